"""The cameras the service watches: each stream a StreamWatch in its own thread, never on the event loop.

>>> hub = StreamHub(service, max_streams=8)
>>> hub.open(asyncio.get_running_loop())          # at startup: the --source streams start
>>> stream = hub.start("rtsp://cam/stream", name="door")
>>> stream.jpeg()                                  # its newest frame, faces drawn (None before the first)
>>> subscriber, backlog = hub.subscribe()          # events: the recent ones, then each as it happens

A stream's frames are annotated and encoded only when asked for (once per new frame, however many viewers).
Its events go to a ring of recent ones and to every subscriber's bounded queue, on the event loop's thread: a
subscriber that falls behind loses its oldest events, counted, and never holds up a stream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..errors import BadInputError, FacestyleError
from ..video import check_count
from .errors import LimitReachedError, MalformedRequestError, NotFoundError, OverloadedError

log = logging.getLogger("facestyle.serve")
MAX_STREAMS = 8
RECENT_EVENTS = 200  # events kept for clients that connect later
SUBSCRIBER_QUEUE = 256  # events waiting for one slow client before its oldest are dropped
STOP_WAIT_S = 6.0  # how long shutting down waits for the streams' threads, in all
LOADING_POLL_S = 0.2
# What a request may set, as `facestyle watch`'s options of the same names (StreamWatch checks the values).
OPTIONS = ("every", "detect_every", "min_face", "min_quality", "naming", "threshold", "realtime", "reembed_every",
           "max_age")
NAME_LENGTH = 64


@dataclass(frozen=True)
class Published:
    """One event as clients get it: ``id`` counts up across the service's life, ``kind`` is the SSE event name."""

    id: int
    kind: str
    data: dict


class Subscriber:
    """One client's bounded queue of events; used on the event loop's thread only."""

    def __init__(self, size: int = SUBSCRIBER_QUEUE):
        self.queue: asyncio.Queue[Published] = asyncio.Queue(size)
        self.dropped = 0  # events lost since the client was last told

    def offer(self, item: Published) -> None:
        if self.queue.full():  # the client is behind: its oldest event goes, the stream never waits
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)

    def take_dropped(self) -> int:
        dropped, self.dropped = self.dropped, 0
        return dropped


def _stream_options(options: dict | None) -> dict:
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise MalformedRequestError(f"options: unknown option {unknown[0]!r}; known: {', '.join(OPTIONS)}", "options")
    if not isinstance(options.get("realtime", True), bool):
        raise MalformedRequestError(f"realtime {options['realtime']!r}: expected true or false", "realtime")
    for key, minimum in (("min_face", 1), ("max_age", 0)):
        if key in options:
            check_count(key, options[key], minimum)
    threshold = options.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0 < threshold < float("inf")):
        raise BadInputError(f"threshold {threshold!r}: expected a distance > 0")
    return {"realtime": True, **options}  # a file plays at its own rate, as a camera would


def _check_name(name, source: str) -> str:
    from ..cli.streams import _file_safe

    if name is None:
        return _file_safe(source)
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_LENGTH:
        raise MalformedRequestError(f"name {str(name)[:80]!r}: expected a text of 1 to {NAME_LENGTH} characters",
                                    "name")
    return name.strip()


def _opened(source) -> object:
    """The source as a watch takes it: a file opened now, so a path that is no video fails here and not in a
    thread later (a camera or a URL is opened by its reader, and reopened when lost)."""
    from ..cli.streams import _check_source
    from ..video import camera_index, is_url, open_source

    if not isinstance(source, str) or not source.strip() or len(source) > 4096:
        raise MalformedRequestError("source: expected a video file, a camera index or a URL (rtsp://...)", "source")
    try:
        _check_source(source)
        return source if camera_index(source) is not None or is_url(source) else open_source(source)
    except FacestyleError as error:
        error.input = "source"
        raise


class Stream:
    """One watched source: its thread, its state, its counts, and its newest frame."""

    def __init__(self, hub: StreamHub, source: str, name: str, options: dict, opened=None):
        from ..video import source_name

        self.hub, self.id, self.name, self.options = hub, "", name, options  # the id: once the hub takes it
        self.source, self._spec = source_name(source), opened if opened is not None else source
        self.state = "starting"  # starting, running, lost, ended, failed, stopped
        self.error: str | None = None
        self.frames = self.reconnects = self.faces = 0
        self.started_at = time.time()
        self._watch = None
        self._stop = threading.Event()
        self._latest = None  # (frame number, pixels, faces as JSON, fps): replaced whole by the stream's thread
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._jpeg_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "source": self.source, "state": self.state, "frames": self.frames,
                "faces": self.faces, "reconnects": self.reconnects, "started_at": round(self.started_at, 3),
                **({"error": self.error} if self.error else {})}

    @property
    def frame_number(self) -> int:
        """The newest frame's number (0: none yet); a viewer compares it to the one it last showed."""
        latest = self._latest
        return latest[0] if latest else 0

    def jpeg(self) -> bytes | None:
        """The newest frame with its faces drawn, as JPEG; None before the first. Encoded once per new frame."""
        latest = self._latest
        if latest is None:
            return None
        with self._jpeg_lock:  # viewers asking at once share one encoding
            if self._jpeg[0] != latest[0]:
                from ..images import encode_image
                from ..streams.annotate import annotate

                number, pixels, faces, fps = latest
                self._jpeg = (number, encode_image(annotate(pixels, faces, fps), "JPEG"))
            return self._jpeg[1]

    def build(self) -> None:
        """The stream's watch, made now so that bad options fail the request that gave them."""
        from ..streams import watch
        from .service import GIVEN_IN_REQUEST

        analyzer, gallery = self.hub.pipeline()
        self._watch = watch([self._spec], analyzer, gallery, keep_pixels=True, given_source=GIVEN_IN_REQUEST,
                            **self.options)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"stream {self.id} {self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop from any thread; the stream's thread ends soon after (see join)."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def join(self, timeout: float) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            if self._watch is None:  # a stream of the command line: the models may still be loading
                self._wait_for_models()
                self.build()
            if self._stop.is_set():
                return
            self._watch_frames()
        except FacestyleError as error:
            self.state, self.error = "failed", str(error).splitlines()[0]
            log.error("stream %s (%s): %s", self.id, self.name, self.error)
        except Exception as error:  # noqa: BLE001 - this stream fails alone, the service goes on
            self.state, self.error = "failed", f"{type(error).__name__}: {error}"
            log.error("stream %s (%s): %s", self.id, self.name, self.error, exc_info=error)
        finally:
            if self._stop.is_set():
                self.state = "stopped"

    def _wait_for_models(self) -> None:
        while not self._stop.is_set():
            try:
                self.hub.pipeline()
                return
            except OverloadedError:  # still loading
                self._stop.wait(LOADING_POLL_S)

    def _watch_frames(self) -> None:
        from ..streams import FrameResult

        self.state, started, faces = "running", time.perf_counter(), []
        if self._stop.is_set():  # stopped while the watch was being made, before stop() could reach it
            self._watch.stop()
        for item in self._watch:
            if isinstance(item, FrameResult):
                if item.analysed:
                    faces = [face.to_json() for face in item.faces]
                    self.faces = len(faces)
                self.frames += 1
                fps = self.frames / max(time.perf_counter() - started, 1e-9)
                self._latest = (self.frames, item.pixels, faces, fps)
            else:
                self._on_event(item)

    def _on_event(self, event) -> None:
        if event.event == "source_lost":
            self.state, self.error = "lost", event.error
        elif event.event == "reconnected":
            self.state, self.error, self.reconnects = "running", None, self.reconnects + 1
        elif event.event == "source_end":
            self.state, self.error = "ended", event.error
        self.hub.publish(event.event, {**event.to_json(), "stream": self.id, "name": self.name})


class StreamHub:
    """The running streams (at most ``max_streams``), their recent events and the clients following them."""

    def __init__(self, service, max_streams: int = MAX_STREAMS, sources=(), recent: int = RECENT_EVENTS,
                 queue_size: int = SUBSCRIBER_QUEUE):
        self.service, self.max_streams, self.queue_size = service, max_streams, queue_size
        self._initial = list(sources)
        self._streams: dict[str, Stream] = {}
        self._stopping: list[Stream] = []  # stopped, their threads not yet joined
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(1)
        self.recent: deque[Published] = deque(maxlen=recent)
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- streams --------------------------------------------------------------------------------
    def pipeline(self):
        """(analyzer, gallery or None) of the service; OverloadedError while the models or the gallery load."""
        analyzer = self.service._face_pipeline()
        if self.service.settings.gallery is None:
            return analyzer, None
        if (self.service.status_gallery or {}).get("state") == "loading":  # opened after the models, on a busy machine
            raise OverloadedError("the gallery is still loading; retry shortly")
        return analyzer, self.service._gallery()

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take events on ``loop`` from now on, and start the streams of the command line (each waits for the
        models in its own thread)."""
        self._loop = loop
        for source in self._initial:
            self._add(Stream(self, source, _check_name(None, source), _stream_options(None)))

    def start(self, source, name=None, options: dict | None = None) -> Stream:
        """Start watching ``source`` (a video file, a camera index, a URL); blocking: run it off the event loop."""
        self._check_room()
        options, name = _stream_options(options), _check_name(name, str(source))
        opened = _opened(source)
        stream = Stream(self, source, name, options, opened)
        try:
            stream.build()
            return self._add(stream)
        except (FacestyleError, TypeError) as error:  # TypeError: an option's value of the wrong type
            getattr(opened, "close", lambda: None)()
            failure = error if isinstance(error, FacestyleError) else BadInputError(f"options: {error}")
            failure.input = getattr(failure, "input", None) or "options"
            raise failure from None

    def _check_room(self) -> None:
        if len(self._streams) >= self.max_streams:
            raise LimitReachedError(f"{len(self._streams)} streams are running, the most this server takes "
                                    "(--max-streams); stop one first", "source")

    def _add(self, stream: Stream) -> Stream:
        with self._lock:
            self._check_room()
            stream.id = str(next(self._ids))
            self._streams[stream.id] = stream
        stream.start()
        self.publish("stream_started", {"stream": stream.id, "name": stream.name, "source": stream.source})
        return stream

    def get(self, stream_id: str) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise NotFoundError(f"stream {stream_id!r}: no such stream (see GET /v1/streams)", "id")
        return stream

    def running(self, stream: Stream) -> bool:
        """Whether ``stream`` is still one of the hub's (not stopped)."""
        return self._streams.get(stream.id) is stream

    def list(self) -> list[dict]:
        return [s.to_json() for s in list(self._streams.values())]

    def stop(self, stream_id: str) -> dict:
        """Stop a stream and forget it at once; its thread ends in the background."""
        with self._lock:
            stream = self.get(stream_id)
            del self._streams[stream_id]
            self._stopping = [s for s in self._stopping if not s.join(0)] + [stream]
        stream.stop()
        self.publish("stream_stopped", {"stream": stream.id, "name": stream.name, "source": stream.source})
        return {"id": stream.id, "name": stream.name, "stopped": True, "frames": stream.frames}

    def close(self) -> None:
        """Stop every stream and wait for their threads (STOP_WAIT_S in all)."""
        with self._lock:
            streams = list(self._streams.values()) + self._stopping
            self._streams, self._stopping = {}, []
        for stream in streams:
            stream.stop()
        deadline = time.monotonic() + STOP_WAIT_S
        for stream in streams:
            if not stream.join(max(0.0, deadline - time.monotonic())):
                log.warning("stream %s (%s): still closing its source at shutdown", stream.id, stream.name)

    # -- events ---------------------------------------------------------------------------------
    def publish(self, kind: str, data: dict) -> None:
        """From any thread: the event goes to the ring and the subscribers on the event loop's thread."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._deliver, kind, {**data, "at": round(time.time(), 3)})
        except RuntimeError:  # the loop has closed: the service is stopping
            pass

    def _deliver(self, kind: str, data: dict) -> None:
        item = Published(next(self._event_ids), kind, data)
        self.recent.append(item)
        for subscriber in self._subscribers:
            subscriber.offer(item)

    def subscribe(self, after: int | None = None, replay: int = 20) -> tuple[Subscriber, list[Published]]:
        """On the event loop's thread: a new subscriber, and the recent events it has not seen (those after
        event ``after``, or the last ``replay``)."""
        subscriber = Subscriber(self.queue_size)
        self._subscribers.add(subscriber)
        recent = list(self.recent)
        if after is not None:
            return subscriber, [e for e in recent if e.id > after]
        return subscriber, recent[-replay:] if replay > 0 else []

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
