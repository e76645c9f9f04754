"""Tracked faces in several streams at once: sources -> detect -> track -> embed (one batch) -> identity per track.

>>> for item in watch(["door.mp4", "rtsp://cam/stream"], analyzer, gallery, detect_every=2):
...     print(item.to_json())        # FrameResult per analysed frame and source, Event per track change

Each tick takes the newest frame of every source. A frame is detected (every ``detect_every``-th analysed
frame of its source; the tracker predicts the boxes in between), its detections are associated with the
source's tracks, and the faces worth embedding (new tracks, larger faces, stale embeddings) of all sources
are embedded in one call of the analyzer's embed step; each changed track's identity is then searched in the
gallery, again in one call. The face pipeline is the analyzer's (detector, landmarks and chips, embed step).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ..face.analyzer import GIVEN_BY_CALLER, Aligned
from ..face.gallery import UNKNOWN
from ..video import check_count
from .events import Event, FrameResult, TrackedFace
from .identities import TrackIdentity, decide
from .sources import SourceReader, Sources
from .tracker import Tracker


@dataclass
class _Stream:
    """One source's state: its tracker, its tracks' identities, and its counts."""

    reader: SourceReader
    tracker: Tracker
    identities: dict[int, TrackIdentity] = field(default_factory=dict)
    frames: int = 0  # taken from the source
    analysed: int = 0
    faces: int = 0
    stopped: bool = False
    last_time: float = 0.0  # of the last frame taken: when its tracks end if the source ends


@dataclass
class _Analysed:
    """One frame of a tick between detection and embedding."""

    stream: _Stream
    frame: object
    faces: list  # [(track, box, detection row or None)]
    to_embed: list  # [(track, area)]
    aligned: Aligned | None
    started: list
    ended: list = field(default_factory=list)


class StreamWatch:
    """Iterate for :class:`FrameResult` and :class:`Event` objects; :meth:`summary` after (or during) the watch."""

    def __init__(self, sources, analyzer, gallery=None, *, threshold: float | None = None, every: int = 1,
                 detect_every: int = 1, reembed_every: int = 30, max_frames: int | None = None,
                 realtime: bool = False, max_age: int = 15, keep_pixels: bool = False):
        for name, value in (("every", every), ("detect_every", detect_every), ("reembed_every", reembed_every)):
            check_count(name, value, minimum=1)
        if max_frames is not None:
            check_count("max_frames", max_frames, minimum=1)
        self.analyzer, self.gallery = analyzer, gallery
        self.threshold = analyzer.threshold_for(threshold, GIVEN_BY_CALLER).value if gallery is not None else None
        self.every, self.detect_every, self.reembed_every = every, detect_every, reembed_every
        self.max_frames, self.keep_pixels = max_frames, keep_pixels
        self._sources = Sources(list(sources) if isinstance(sources, (list, tuple)) else [sources], realtime)
        ids = itertools.count(1)  # one id space across the sources
        self._streams = {r: _Stream(r, Tracker(max_age=max_age, ids=ids)) for r in self._sources.readers}
        self._embedded = 0

    @property
    def frames_taken(self) -> int:
        """Frames taken from all the sources so far (analysed or skipped by ``every``; not the dropped ones)."""
        return sum(s.frames for s in self._streams.values())

    def summary(self) -> dict:
        return {"sources": [{"source": s.reader.name, "frames": s.frames, "analysed": s.analysed, "faces": s.faces,
                             "dropped": s.reader.dropped, **({"error": s.reader.error} if s.reader.error else {})}
                            for s in self._streams.values()],
                "embedded": self._embedded}

    def __iter__(self):
        with self._sources as sources:
            for tick in sources.ticks():
                yield from self._tick(tick)

    def _tick(self, tick):
        analysed, out = [], []
        for reader, frame in tick:
            stream = self._streams[reader]
            if frame is None:
                out += self._end(stream, reader.error)
            elif not stream.stopped:
                analysed += self._take(stream, frame, out)
        if analysed:
            out = self._embed_and_name(analysed) + out
        return out

    def _take(self, stream: _Stream, frame, out: list) -> list:
        stream.frames, stream.last_time = stream.frames + 1, frame.time_s
        if stream.frames == self.max_frames:
            stream.stopped = True  # its end is reported with its last results
        if frame.index % self.every:
            if self.keep_pixels:  # for an annotated video: the frame, no analysis
                out.append(FrameResult(stream.reader.name, frame.index, frame.time_s, [], frame.pixels, analysed=False))
            return []
        found = [self._analyse(stream, frame)]
        if stream.stopped:
            stream.reader.stop()
        return found

    def _analyse(self, stream: _Stream, frame) -> _Analysed:
        detect = stream.analysed % self.detect_every == 0
        stream.analysed += 1
        if not detect:
            update = stream.tracker.predict()
            faces = [(t, t.box, None) for t in update.tracks if not t.lost]
            return _Analysed(stream, frame, faces, [], None, [])
        detections = self.analyzer.detector.detect(frame.pixels, upsample=self.analyzer.upsample,
                                                   threshold=stream.tracker.low_score)
        update = stream.tracker.update(detections.boxes, detections.scores)
        faces = [(t, [int(v) for v in detections.boxes[row]], row) for t, row in update.matched]
        faces.sort(key=lambda face: face[0].id)
        to_embed, rows = [], []
        if self.gallery is not None:
            for track, box, row in faces:
                area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
                ident = stream.identities.setdefault(track.id, TrackIdentity())
                if ident.wants_embedding(area, stream.analysed, self.reembed_every):
                    to_embed.append((track, area))
                    rows.append(row)
        aligned = self._align(frame.pixels, detections, rows) if rows else None
        return _Analysed(stream, frame, faces, to_embed, aligned, update.started, update.ended)

    def _align(self, pixels, detections, rows) -> Aligned:
        boxes, scores = detections.boxes[rows], detections.scores[rows]
        landmarks, chips = self.analyzer.chips(pixels, boxes)
        return Aligned(boxes, scores, landmarks, chips)

    def _embed_and_name(self, analysed: list[_Analysed]) -> list:
        """Every chip of the tick embedded in one call, every changed track searched in one call, then the results."""
        embedding = [a for a in analysed if a.aligned is not None]
        changed = []
        for a, faces in zip(embedding, self.analyzer.embed_aligned([a.aligned for a in embedding])):
            for (track, area), face in zip(a.to_embed, faces):
                ident = a.stream.identities[track.id]
                ident.add(face.embedding, area, a.stream.analysed)
                changed.append(ident)
                self._embedded += 1
        named = {id(i) for i in decide(changed, self.gallery, self.threshold)} if changed else set()
        return [item for a in analysed for item in self._results(a, named)]

    def _identity(self, stream: _Stream, track) -> tuple[str | None, float | None]:
        if self.gallery is None:
            return None, None
        ident = stream.identities.get(track.id)
        return (ident.identity, ident.distance) if ident else (UNKNOWN, None)

    def _results(self, a: _Analysed, named: set) -> list:
        stream, source, time_s = a.stream, a.stream.reader.name, a.frame.time_s
        out = [Event("track_start", source, t.id, self._identity(stream, t)[0], time_s) for t in a.started]
        faces = []
        for track, box, _ in a.faces:
            identity, distance = self._identity(stream, track)
            faces.append(TrackedFace(track.id, tuple(int(v) for v in box), identity, distance))
            if id(stream.identities.get(track.id)) in named:
                out.append(Event("identified", source, track.id, identity, time_s))
        stream.faces += len(faces)
        out.append(FrameResult(source, a.frame.index, time_s, faces, a.frame.pixels if self.keep_pixels else None))
        for track in a.ended:
            out.append(Event("track_end", source, track.id, self._identity(stream, track)[0], time_s))
            stream.identities.pop(track.id, None)
        return out

    def _end(self, stream: _Stream, error: str | None) -> list:
        """A source ended (or failed, or reached max_frames): its tracks end, then the source."""
        out = [Event("track_end", stream.reader.name, t.id, self._identity(stream, t)[0], stream.last_time)
               for t in stream.tracker.end_all()]
        return out + [Event("source_end", stream.reader.name, None, None, stream.last_time, error)]


def watch(sources, analyzer, gallery=None, **options) -> StreamWatch:
    """Tracked, named faces of ``sources`` (video files, camera indices, URLs): see :class:`StreamWatch`."""
    return StreamWatch(sources, analyzer, gallery, **options)
