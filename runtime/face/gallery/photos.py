"""Photos in, people out: identification with per-stage timings (enrolment is in :mod:`.enrol`).

The pipeline and the result are the analyzer's (:meth:`FaceAnalyzer.identify`, :class:`PhotoIdentification`);
this is the gallery-first spelling of the same call.
"""

from __future__ import annotations

from ..analyzer import GIVEN_BY_CALLER, STAGES, PhotoIdentification
from .api import Gallery

__all__ = ["PhotoIdentification", "STAGES", "identify_photo"]


def identify_photo(gallery: Gallery, analyzer, image, threshold: float | None = None, top_k: int = 3,
                   given_source: str = GIVEN_BY_CALLER) -> PhotoIdentification:
    """Every face of a photo with its nearest enrolled people and its identity (or "unknown").

    ``faces``: one :class:`IdentifiedFace` (``box``, ``matches``, ``identity``) per face; ``timings``:
    the milliseconds spent decoding, detecting, finding landmarks, aligning, embedding and searching;
    ``to_json()``: what ``facestyle identify --json`` prints.
    """
    return analyzer.identify(gallery, image, top_k, threshold, given_source)
