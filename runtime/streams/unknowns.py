"""A sink that keeps the faces of tracks that end "unknown" in the gallery, for naming later
(``facestyle gallery unknowns``, :mod:`facestyle.face.gallery.unknowns`).

>>> keeper = KeepUnknowns(analyzer, gallery)
>>> for item in watch(["door.mp4"], analyzer, gallery, keep_pixels=True):
...     keeper(item)

Each track's best faces are chosen as the event chips are (:mod:`.outlets.chips`: by the quality the watch
reports), at most ``per_track`` of them, from frames at least ``spacing`` analysed frames apart, so the kept faces
are not three copies of one moment; faces under ``min_quality``, and faces that overlap another (half hidden, or
a crossing where the track may pass to the other face), are never kept. A chosen face is aligned at once
(the frame is not kept); when the track ends "unknown", its faces are embedded in one call and written in one
transaction, the oldest rows beyond ``limit`` dropped. A track that got a name keeps nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from ..errors import BadInputError
from ..face.gallery import UNKNOWN
from ..face.gallery.unknowns import DEFAULT_LIMIT, keep
from ..face.quality import DEFAULT_MIN_QUALITY
from .events import Event, FrameResult
from .watch import overlapping_boxes

PER_TRACK = 3
SPACING = 5  # analysed frames between two kept faces of a track
CHIP_JPEG_QUALITY = 92


@dataclass
class _Kept:
    quality: float
    frame: int
    chip: np.ndarray  # aligned, the embedder's input size


@dataclass
class _Track:
    key: str
    first_seen: float
    faces: list[_Kept] = field(default_factory=list)


class KeepUnknowns:
    """Call with each item of a watch made with ``keep_pixels=True``; :attr:`kept` counts the faces written."""

    def __init__(self, analyzer, gallery, *, per_track: int = PER_TRACK, spacing: int = SPACING,
                 min_quality: float = DEFAULT_MIN_QUALITY, limit: int = DEFAULT_LIMIT):
        if per_track < 1 or limit < 1:
            raise BadInputError(f"per_track {per_track}, limit {limit}: expected at least 1 each")
        self.analyzer, self.gallery = analyzer, gallery
        self.per_track, self.spacing, self.min_quality, self.limit = per_track, spacing, min_quality, limit
        self._tracks: dict[tuple[str, int], _Track] = {}
        self.kept = self.tracks = 0

    def __call__(self, item) -> None:
        if isinstance(item, FrameResult) and item.analysed:
            self._see(item)
        elif isinstance(item, Event) and item.event == "track_end":
            track = self._tracks.pop((item.source, item.track), None)
            if track is not None and track.faces and item.identity == UNKNOWN:
                self._store(item.source, track)

    def key_of(self, source: str, track: int) -> str | None:
        """The key a track's faces are kept under (the ``track`` of their rows), while the track lasts."""
        found = self._tracks.get((source, track))
        return found.key if found else None

    def _see(self, result: FrameResult) -> None:
        if result.pixels is None and result.faces:
            raise BadInputError(f"keeping unknown faces of {result.source}: the frames are needed, "
                                "watch(..., keep_pixels=True)")
        now = time.time()
        overlapping = overlapping_boxes([face.box for face in result.faces])
        for i, face in enumerate(result.faces):
            track = self._tracks.get((result.source, face.track))
            if track is None:
                track = self._tracks[(result.source, face.track)] = _Track(uuid.uuid4().hex[:16], now)
            if face.quality is None or face.quality < self.min_quality or i in overlapping:
                continue
            slot = self._slot(track.faces, face.quality, result.frame)
            if slot is not None:
                chip = self.analyzer.chips(result.pixels, np.asarray([face.box]))[1][0]
                kept = _Kept(float(face.quality), result.frame, chip)
                track.faces[slot:slot + 1] = [kept]

    def _slot(self, faces: list[_Kept], quality: float, frame: int) -> int | None:
        """Where a face of ``quality`` at ``frame`` goes among a track's kept ones (replacing the one there, or
        appended at ``len(faces)``), or None when it is not worth keeping."""
        near = [i for i, k in enumerate(faces) if abs(k.frame - frame) < self.spacing]
        if near:  # one moment, one face: the better of the two
            best = max(near, key=lambda i: faces[i].quality)
            return best if quality > faces[best].quality else None
        if len(faces) < self.per_track:
            return len(faces)
        worst = min(range(len(faces)), key=lambda i: faces[i].quality)
        return worst if quality > faces[worst].quality else None

    def _store(self, source: str, track: _Track) -> None:
        from ..images import encode_image

        embeddings = np.asarray(self.analyzer.embedder.embed(np.stack([k.chip for k in track.faces])), np.float32)
        now = time.time()
        rows = [(source, track.key, track.first_seen, now, k.quality, embeddings[i].tobytes(),
                 encode_image(k.chip, "JPEG", quality=CHIP_JPEG_QUALITY)) for i, k in enumerate(track.faces)]
        keep(self.gallery.store, rows, self.limit)
        self.kept += len(rows)
        self.tracks += 1


def prepare(gallery) -> None:
    """Make sure the gallery has the table the faces go in (a gallery made before it gets it now, as on any
    write); GalleryError when the gallery cannot be written."""
    if not gallery.store.has_table("unknowns"):
        gallery.store.initialise(gallery.identity, write=True)
