"""What a watch yields: a result per analysed frame and source, and the tracks' events, each with its JSON line."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EVENTS = ("track_start", "identified", "track_end", "source_end", "source_lost", "reconnected")


@dataclass(frozen=True)
class TrackedFace:
    track: int
    box: tuple[int, int, int, int]  # [left, top, right, bottom]: detected, or predicted between detections
    identity: str | None  # a name, "unknown", or None (no gallery)
    distance: float | None  # of the track's embedding to the named (or nearest) person
    quality: float | None = None  # of the face in this frame, or the track's last known between alignments

    def to_json(self) -> dict:
        return {"track": self.track, "box": list(self.box), "identity": self.identity,
                "distance": None if self.distance is None else round(self.distance, 6),
                "quality": None if self.quality is None else round(self.quality, 4)}


@dataclass(frozen=True)
class FrameResult:
    source: str
    frame: int
    time_s: float
    faces: list[TrackedFace]
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)  # the frame, for annotation
    analysed: bool = True  # False: a frame skipped by ``every``, kept only for an annotated video

    def to_json(self) -> dict:
        return {"source": self.source, "frame": self.frame, "time_s": round(self.time_s, 6),
                "faces": [f.to_json() for f in self.faces]}


@dataclass(frozen=True)
class Event:
    """``track_start``, ``identified`` (a track's name decided or changed, with the threshold's source),
    ``track_end``; ``source_end`` (track None) when a source ends, with ``error`` when it failed; ``source_lost``
    (with ``error``: why) and ``reconnected`` when a camera or URL drops and is opened again."""

    event: str
    source: str
    track: int | None
    identity: str | None
    time_s: float
    error: str | None = None
    threshold_source: str | None = None  # ``identified``: where the threshold that named the track came from

    def to_json(self) -> dict:
        out = {"event": self.event, "source": self.source, "track": self.track, "identity": self.identity,
               "time_s": round(self.time_s, 6)}
        if self.threshold_source is not None:
            out["threshold_source"] = self.threshold_source
        return {**out, "error": self.error} if self.error else out
