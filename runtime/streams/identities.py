"""Who a track is: decided from all the embeddings made of its face, not from one frame.

A track's face is embedded when the track is new, when its face is larger than any embedded before (a
nearer face gives a better embedding), and at most every ``reembed_every`` analysed frames otherwise. Its
identity is the size-weighted mean of its embeddings, searched in the gallery: one bad frame (a blur, a
turned head) moves the mean a little instead of flipping the name, and the name holds through the frames
in between embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..face.gallery import UNKNOWN

KEPT_EMBEDDINGS = 16  # the newest embeddings a track's identity is made of
BETTER_BY = 1.2  # a face this much larger (in area) than the largest embedded is embedded again


@dataclass
class TrackIdentity:
    embeddings: list[np.ndarray] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    best_area: float = 0.0
    last_embedded: int | None = None  # the analysed-frame count when it was last embedded
    identity: str = UNKNOWN
    distance: float | None = None

    def wants_embedding(self, area: float, analysed: int, reembed_every: int) -> bool:
        """New, larger than any embedded, or not embedded for ``reembed_every`` analysed frames."""
        return (self.last_embedded is None or area > BETTER_BY * self.best_area
                or analysed - self.last_embedded >= reembed_every)

    def add(self, embedding: np.ndarray, area: float, analysed: int) -> None:
        self.embeddings = (self.embeddings + [np.asarray(embedding, np.float64)])[-KEPT_EMBEDDINGS:]
        self.weights = (self.weights + [float(area)])[-KEPT_EMBEDDINGS:]
        self.best_area, self.last_embedded = max(self.best_area, float(area)), analysed

    def mean(self) -> np.ndarray:
        return np.average(np.stack(self.embeddings), axis=0, weights=self.weights)


def decide(identities: list[TrackIdentity], gallery, threshold: float) -> list[TrackIdentity]:
    """Search the mean embedding of each of ``identities`` in ``gallery`` (one call); returns those whose
    identity changed to a name."""
    if not identities:
        return []
    found = gallery.identify(np.stack([i.mean() for i in identities]), threshold, top_k=1)
    named = []
    for ident, result in zip(identities, found):
        before = ident.identity
        ident.identity = result.identity
        ident.distance = result.matches[0].distance if result.matches else None
        if ident.identity != before and ident.identity != UNKNOWN:
            named.append(ident)
    return named
