"""Who a track is: decided from the embeddings made of its face, weighted by their quality, not from one frame.

Two ways to name (``NAMINGS``):

- ``"track"`` (:class:`TrackIdentity`): a track's face is embedded when the track is new, when its face is of
  better quality than any embedded before, and at most every ``reembed_every`` analysed frames otherwise; faces
  below the minimum quality are never embedded. Its identity is the quality-weighted mean of its embeddings,
  searched in the gallery with the open-set (1:N) threshold for the gallery's size. It stays "unknown" until
  there is enough evidence: two embeddings, or one of high quality. A single frame can mislead (a half-turned
  head, a face passing behind another); two frames are rarely wrong the same way, and one sharp, frontal face is
  as good as the photo the person was enrolled from. Until then each acceptable face is embedded, so the
  evidence gathers within a few frames. A name, once given, holds through low-quality frames: they add nothing
  to the mean. Where two faces cross, a track can go on with the other face: so a track whose face overlapped
  another's is embedded again on its first frame clear of it (and one found again after a miss, on that frame),
  and a face whose embedding is farther from its
  track's mean than the pair threshold (not the same person, as ``verify`` would say) starts the track's
  evidence afresh, "unknown" until it is enough again, instead of carrying a name onto someone else.
- ``"frame"`` (:class:`FrameIdentity`): every face embedded on every analysed frame and named from that frame
  alone with the pair threshold, as when each frame is a photo; the tracks only give the ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..face.gallery import UNKNOWN

KEPT_EMBEDDINGS = 16  # the newest embeddings a track's identity is made of
BETTER_BY = 0.05  # a face this much better in quality than the best embedded is embedded again
HIGH_QUALITY = 0.8  # one face this good is enough evidence to name a track
ENOUGH_EMBEDDINGS = 2  # otherwise this many faces of acceptable quality are


@dataclass
class TrackIdentity:
    embeddings: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # each embedding's face quality
    best_quality: float = 0.0  # of the faces embedded
    last_embedded: int | None = None  # the analysed-frame count when it was last embedded
    quality: float | None = None  # of the last face aligned, reported on the frames in between
    identity: str = UNKNOWN
    distance: float | None = None
    recheck: bool = False  # its face overlapped another, or was missed: embed it again, it may be another's now
    last_seen: int | None = None  # the analysed-frame count when its face was last found

    def wants_embedding(self, quality: float, analysed: int, reembed_every: int, min_quality: float) -> bool:
        """Acceptable, and new, still short of evidence, clear again after overlapping another face, better than
        any embedded, or not embedded for ``reembed_every`` analysed frames."""
        if quality < min_quality:
            return False
        return (self.last_embedded is None or not self.has_evidence() or self.recheck
                or quality > self.best_quality + BETTER_BY or analysed - self.last_embedded >= reembed_every)

    def add(self, embedding: np.ndarray, quality: float, analysed: int, same_person: float = np.inf) -> None:
        """One more embedding of the track's face; one farther than ``same_person`` from the track's mean is
        someone else's face: the evidence starts again from it."""
        if self.embeddings and np.linalg.norm(np.asarray(embedding, np.float64) - self.mean()) > same_person:
            self.embeddings, self.weights, self.best_quality = [], [], 0.0
            self.identity, self.distance = UNKNOWN, None
        self.recheck = False
        self.embeddings = (self.embeddings + [np.asarray(embedding, np.float64)])[-KEPT_EMBEDDINGS:]
        self.weights = (self.weights + [max(float(quality), 1e-6)])[-KEPT_EMBEDDINGS:]
        self.best_quality, self.last_embedded = max(self.best_quality, float(quality)), analysed

    def has_evidence(self) -> bool:
        return len(self.embeddings) >= ENOUGH_EMBEDDINGS or self.best_quality >= HIGH_QUALITY

    def mean(self) -> np.ndarray:
        return np.average(np.stack(self.embeddings), axis=0, weights=self.weights)

    @staticmethod
    def threshold(analyzer, gallery, given: float | None, given_source: str):
        """The open-set threshold: a 1:N search needs a stricter one the more people the gallery holds."""
        return analyzer.identify_threshold(gallery, given, given_source)


@dataclass
class FrameIdentity(TrackIdentity):
    """Named from the last frame alone: every face embedded, whatever its quality, and only its embedding kept."""

    def wants_embedding(self, quality: float, analysed: int, reembed_every: int, min_quality: float) -> bool:
        return True

    def add(self, embedding: np.ndarray, quality: float, analysed: int, same_person: float = np.inf) -> None:
        self.embeddings, self.weights = [np.asarray(embedding, np.float64)], [1.0]
        self.best_quality, self.last_embedded = float(quality), analysed

    def has_evidence(self) -> bool:
        return bool(self.embeddings)

    @staticmethod
    def threshold(analyzer, gallery, given: float | None, given_source: str):
        """The pair threshold, as for one photo against another."""
        return analyzer.threshold_for(given, given_source)


NAMINGS = {"track": TrackIdentity, "frame": FrameIdentity}


def decide(identities: list[TrackIdentity], gallery, threshold: float) -> list[TrackIdentity]:
    """Search the mean embedding of each of ``identities`` with enough evidence in ``gallery`` (one call);
    returns those whose identity changed to a name."""
    ready = [i for i in identities if i.has_evidence()]
    if not ready:
        return []
    found = gallery.identify(np.stack([i.mean() for i in ready]), threshold, top_k=1)
    named = []
    for ident, result in zip(ready, found):
        before = ident.identity
        ident.identity = result.identity
        ident.distance = result.matches[0].distance if result.matches else None
        if ident.identity != before and ident.identity != UNKNOWN:
            named.append(ident)
    return named
