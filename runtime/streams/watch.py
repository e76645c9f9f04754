"""Tracked faces in several streams at once: sources -> detect -> track -> quality -> embed (one batch) -> identity.

>>> for item in watch(["door.mp4", "rtsp://cam/stream"], analyzer, gallery, detect_every=2):
...     print(item.to_json())        # FrameResult per analysed frame and source, Event per track change

Each tick takes the newest frame of every source. A frame is detected (:mod:`.regions`: the whole frame every
``detect_every``-th analysed frame of its source, scaled so a ``min_face``-px face is found; only around the
tracked faces in between), its detections are associated with the source's tracks, their faces aligned and
their quality measured. The faces worth embedding (see
:mod:`.identities`: by default new tracks, better faces, stale embeddings, never a face below ``min_quality``)
of all sources are embedded in one call of the analyzer's embed step; each changed track's identity is then
searched in the gallery, again in one call. ``naming="frame"`` embeds and names every face of every analysed
frame from that frame alone instead. The face pipeline is the analyzer's (detector, landmarks and chips,
embed step).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..errors import BadInputError
from ..face.analyzer import GIVEN_BY_CALLER, Aligned
from ..face.gallery import UNKNOWN
from ..face.quality import DEFAULT_MIN_QUALITY, quality_of
from ..video import check_count
from .events import Event, FrameResult, TrackedFace
from .identities import NAMINGS, TrackIdentity, decide
from .regions import FrameDetector
from .sources import Reconnect, SourceReader, Sources
from .tracker import Tracker


@dataclass
class _Stream:
    """One source's state: its tracker, its tracks' identities, and its counts."""

    reader: SourceReader
    tracker: Tracker
    detector: FrameDetector
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
    to_embed: list  # [(track, quality)]
    aligned: Aligned | None  # the faces of to_embed, aligned
    started: list
    ended: list = field(default_factory=list)


class StreamWatch:
    """Iterate for :class:`FrameResult` and :class:`Event` objects; :meth:`summary` after (or during) the watch.

    ``naming``: "track" (names from each track's quality-weighted embeddings, faces under ``min_quality`` never
    used, the open-set threshold for the gallery's size) or "frame" (every face named from its frame alone with
    the pair threshold: the per-frame baseline); see :mod:`.identities`. ``threshold``: a fixed one instead, said
    to come from ``given_source``. ``detect_every``, ``min_face``, ``motion`` and ``full_every``: see :mod:`.regions`.
    """

    def __init__(self, sources, analyzer, gallery=None, *, threshold: float | None = None, every: int = 1,
                 detect_every: int = 1, min_face: int = 50, motion: bool = False, full_every: int | None = None,
                 reembed_every: int = 30, max_frames: int | None = None,
                 realtime: bool = False, max_age: int = 15, keep_pixels: bool = False,
                 min_quality: float = DEFAULT_MIN_QUALITY, naming: str = "track",
                 given_source: str = GIVEN_BY_CALLER, stall_timeout: float = Reconnect.stall_timeout_s):
        for name, value in (("every", every), ("detect_every", detect_every), ("reembed_every", reembed_every)):
            check_count(name, value, minimum=1)
        if max_frames is not None:
            check_count("max_frames", max_frames, minimum=1)
        if naming not in NAMINGS:
            raise BadInputError(f"naming {naming!r}: expected one of {', '.join(NAMINGS)}")
        if not 0 <= min_quality <= 1:
            raise BadInputError(f"min_quality {min_quality}: expected a quality from 0 to 1")
        self.analyzer, self.gallery, self.naming = analyzer, gallery, naming
        self._identity_kind = NAMINGS[naming]
        self._given, self._given_source, self._rule = threshold, given_source, None
        self.every, self.detect_every, self.reembed_every = every, detect_every, reembed_every
        self.motion, self.full_every = motion, full_every
        self.max_frames, self.keep_pixels, self.min_quality = max_frames, keep_pixels, min_quality
        self._sources = Sources(list(sources) if isinstance(sources, (list, tuple)) else [sources], realtime,
                                Reconnect(stall_timeout_s=stall_timeout))
        ids = itertools.count(1)  # one id space across the sources
        self._streams = {r: self._stream(r, Tracker(max_age=max_age, ids=ids), min_face) for r in self._sources.readers}
        self._embedded = 0

    def _stream(self, reader: SourceReader, tracker: Tracker, min_face: int) -> _Stream:
        detector = FrameDetector(self.analyzer.detector, detect_every=self.detect_every, min_face=min_face,
                                 upsample=self.analyzer.upsample, low_score=tracker.low_score,
                                 motion=self.motion, full_every=self.full_every)
        return _Stream(reader, tracker, detector)

    @property
    def frames_taken(self) -> int:
        """Frames taken from all the sources so far (analysed or skipped by ``every``; not the dropped ones)."""
        return sum(s.frames for s in self._streams.values())

    def threshold(self):
        """The threshold names are decided with now (a ``Threshold``: value and source), None without a gallery.
        With ``naming="track"`` it is the open-set threshold for the gallery's current size, asked again each
        round in which a name is decided (the gallery may grow while watching)."""
        if self.gallery is None:
            return None
        self._rule = self._identity_kind.threshold(self.analyzer, self.gallery, self._given, self._given_source)
        return self._rule

    def summary(self) -> dict:
        rule = self._rule or self.threshold()
        return {"sources": [{"source": s.reader.name, "frames": s.frames, "analysed": s.analysed, "faces": s.faces,
                             "dropped": s.reader.dropped,
                             "reconnects": s.reader.reconnects, **({"error": s.reader.error} if s.reader.error else {})}
                            for s in self._streams.values()],
                "embedded": self._embedded, "naming": self.naming,
                **({"threshold": rule.value, "threshold_source": rule.source} if rule else {})}

    def stop(self) -> None:
        """Stop every source, from any thread: the iteration then ends with each source's end (a reader blocked
        in opening a source stops once that returns)."""
        for reader in self._sources.readers:
            reader.stop(wait=0)

    def __iter__(self):
        with self._sources as sources:
            for tick in sources.ticks():
                yield from self._tick(tick)

    def _tick(self, tick):
        analysed, out, connections = [], [], []
        for reader, frame in tick:
            stream = self._streams[reader]
            if frame is None:
                out += self._end(stream, reader.error)
            elif isinstance(frame, Event):  # a live source lost or reconnected: before its frame of the tick
                connections += self._connection(stream, frame)
            elif not stream.stopped:
                analysed += self._take(stream, frame, out)
        if analysed:
            out = self._embed_and_name(analysed) + out
        return connections + out

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
        detections = stream.detector.detect(frame.pixels, [t.box for t in stream.tracker.tracks], stream.analysed)
        stream.analysed += 1
        if detections is None:  # no full pass due and no track to look for: the tracker predicts
            update = stream.tracker.predict()
            faces = [(t, t.box, None) for t in update.tracks if not t.lost]
            return _Analysed(stream, frame, faces, [], None, [])
        update = stream.tracker.update(detections.boxes, detections.scores)
        faces = [(t, [int(v) for v in detections.boxes[row]], row) for t, row in update.matched]
        faces.sort(key=lambda face: face[0].id)
        aligned = self._align(frame.pixels, detections, [row for _, _, row in faces])
        to_embed = self._worth_embedding(stream, faces, quality_of(aligned) if faces else np.zeros(0))
        wanted = [i for i, _ in to_embed]
        chosen = Aligned(aligned.boxes[wanted], aligned.scores[wanted], aligned.landmarks[wanted], aligned.chips[wanted])
        return _Analysed(stream, frame, faces, [(track, q) for _, (track, q) in to_embed],
                         chosen if wanted else None, update.started, update.ended)

    def _worth_embedding(self, stream: _Stream, faces: list, qualities: np.ndarray) -> list:
        """[(position in faces, (track, quality))] of the faces to embed; every face's quality noted on its track."""
        chosen, overlapping = [], overlapping_boxes([box for _, box, _ in faces])
        for i, ((track, _, _), quality) in enumerate(zip(faces, qualities)):
            ident = stream.identities.setdefault(track.id, self._identity_kind())
            ident.quality = float(quality)
            if ident.last_seen is not None and stream.analysed - ident.last_seen > 1:  # found again after a miss
                ident.recheck = True
            ident.last_seen = stream.analysed
            if i in overlapping:  # embedded again once clear (a face half behind another is no evidence)
                ident.recheck = True
                continue
            if self.gallery is not None and ident.wants_embedding(ident.quality, stream.analysed, self.reembed_every,
                                                                  self.min_quality):
                chosen.append((i, (track, ident.quality)))
        return chosen

    def _align(self, pixels, detections, rows) -> Aligned:
        boxes, scores = detections.boxes[rows], detections.scores[rows]
        landmarks, chips = self.analyzer.chips(pixels, boxes)
        return Aligned(boxes, scores, landmarks, chips)

    def _embed_and_name(self, analysed: list[_Analysed]) -> list:
        """Every chip of the tick embedded in one call, every changed track searched in one call, then the results."""
        embedding = [a for a in analysed if a.aligned is not None]
        changed = []
        for a, faces in zip(embedding, self.analyzer.embed_aligned([a.aligned for a in embedding])):
            for (track, quality), face in zip(a.to_embed, faces):
                ident = a.stream.identities[track.id]
                ident.add(face.embedding, quality, a.stream.analysed, same_person=self.analyzer.threshold)
                changed.append(ident)
                self._embedded += 1
        named = set()
        if any(ident.has_evidence() for ident in changed):
            named = {id(i) for i in decide(changed, self.gallery, self.threshold().value)}
        return [item for a in analysed for item in self._results(a, named)]

    def _identity(self, stream: _Stream, track) -> tuple[str | None, float | None]:
        if self.gallery is None:
            return None, None
        ident = stream.identities.get(track.id)
        return (ident.identity, ident.distance) if ident else (UNKNOWN, None)

    def _quality(self, stream: _Stream, track) -> float | None:
        ident = stream.identities.get(track.id)
        return ident.quality if ident else None

    def _results(self, a: _Analysed, named: set) -> list:
        stream, source, time_s = a.stream, a.stream.reader.name, a.frame.time_s
        out = [Event("track_start", source, t.id, self._identity(stream, t)[0], time_s) for t in a.started]
        faces = []
        for track, box, _ in a.faces:
            identity, distance = self._identity(stream, track)
            faces.append(TrackedFace(track.id, tuple(int(v) for v in box), identity, distance,
                                     self._quality(stream, track)))
            if id(stream.identities.get(track.id)) in named:
                out.append(Event("identified", source, track.id, identity, time_s, threshold_source=self._rule.source))
        stream.faces += len(faces)
        out.append(FrameResult(source, a.frame.index, time_s, faces, a.frame.pixels if self.keep_pixels else None))
        for track in a.ended:
            out.append(Event("track_end", source, track.id, self._identity(stream, track)[0], time_s))
            stream.identities.pop(track.id, None)
        return out

    def _connection(self, stream: _Stream, event: Event) -> list:
        """A live source lost (its tracks end: who left during the gap is unknown) or reconnected: the event."""
        ended = stream.tracker.end_all() if event.event == "source_lost" else []
        out = [Event("track_end", stream.reader.name, t.id, self._identity(stream, t)[0], stream.last_time)
               for t in ended]
        for track in ended:
            stream.identities.pop(track.id, None)
        return out + [event]

    def _end(self, stream: _Stream, error: str | None) -> list:
        """A source ended (or failed, or reached max_frames): its tracks end, then the source."""
        out = [Event("track_end", stream.reader.name, t.id, self._identity(stream, t)[0], stream.last_time)
               for t in stream.tracker.end_all()]
        return out + [Event("source_end", stream.reader.name, None, None, stream.last_time, error)]


def overlapping_boxes(boxes: list) -> set[int]:
    """The positions in ``boxes`` ([x1, y1, x2, y2] inclusive) of those that overlap another."""
    found = set()
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                found |= {i, j}
    return found


def watch(sources, analyzer, gallery=None, **options) -> StreamWatch:
    """Tracked, named faces of ``sources`` (video files, camera indices, URLs): see :class:`StreamWatch`."""
    return StreamWatch(sources, analyzer, gallery, **options)
