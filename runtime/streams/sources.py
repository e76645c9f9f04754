"""Several video sources read at once, each by its own thread, handed out a tick at a time.

>>> with Sources(["door.mp4", "0", "rtsp://cam/stream"]) as sources:
...     for tick in sources.ticks():                # [(SourceReader, Frame | Event | None), ...]
...         ...

A live source (a camera, a URL) keeps one frame: a newer one replaces a frame not yet taken, and the
replaced frame is counted as dropped, so a slow consumer sees the present, not a growing backlog. A file is
read in order and never dropped (its reader waits for the consumer), unless ``realtime``: then it is paced
at its frame rate and dropped like a camera. Files read in order go through in step: a tick waits for a
frame of each (decoding is never the wait that matters), so their frames share the embedding batches the
same way on every run. A file that cannot be opened or ends stops alone; the others go on.

A live source that cannot be opened, ends, or sends no frame for ``stall_timeout_s`` is lost, not ended: its
reader hands out a ``source_lost`` event and reopens it after growing delays (``first_delay_s`` doubling up
to ``max_delay_s``) until it opens again (a ``reconnected`` event) or the reader is stopped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from ..errors import BadInputError, FacestyleError
from ..video import Frame, VideoSource, camera_index, is_url, open_source, source_name
from .events import Event

FILE_BUFFER = 4  # frames a file's reader decodes ahead
DELAYS_KEPT = 64  # the last reconnection delays a reader remembers
STOP_WAIT_S = 5.0  # how long closing waits for the readers' threads


@dataclass(frozen=True)
class Reconnect:
    """When a live source is lost, and how soon it is opened again."""

    stall_timeout_s: float = 10.0  # no frame for this long: the source is lost
    open_timeout_s: float = 10.0  # opening a URL takes longer: it failed (FFmpeg reads a few frames to learn it)
    first_delay_s: float = 0.5  # before the first attempt to reopen it
    max_delay_s: float = 30.0  # the delay doubles after each failed attempt, up to this

    def __post_init__(self):
        for name in ("stall_timeout_s", "open_timeout_s", "first_delay_s", "max_delay_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise BadInputError(f"{name} {value!r}: expected a number of seconds > 0")

    def delays(self):
        """The waits before each attempt to reopen a lost source: first_delay_s, doubling, capped at max_delay_s."""
        delay = self.first_delay_s
        while True:
            yield min(delay, self.max_delay_s)
            delay = min(delay * 2, self.max_delay_s)


def _is_live(spec) -> bool:
    """A camera or a URL (known before it is opened, so a slow one holds nothing up)."""
    return spec.live if isinstance(spec, VideoSource) else camera_index(spec) is not None or is_url(spec)


class SourceReader:
    """One source's thread and buffer. ``frames``: read; ``dropped``: replaced before they were taken;
    ``reconnects``: times a lost live source was opened again; ``delays``: the last waits before reopening it."""

    def __init__(self, spec, condition: threading.Condition, realtime: bool, reconnect: Reconnect | None = None):
        self.spec = spec
        self.name = spec.name if isinstance(spec, VideoSource) else source_name(spec)
        self.frames = self.dropped = self.reconnects = 0
        self.delays: deque[float] = deque(maxlen=DELAYS_KEPT)
        self.error: str | None = None
        self.done = False
        self.live = _is_live(spec)
        self.reconnect = reconnect or Reconnect()
        self._realtime = realtime
        self._condition = condition
        self._buffer: deque[Frame | Event] = deque()  # frames, and the source's events in their place among them
        self._waiting = 0  # frames in the buffer
        self._stop = False
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"source {self.name}", daemon=True)

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    @property
    def _capacity(self) -> int:
        return 1 if self.live or self._realtime else FILE_BUFFER

    def _run(self) -> None:
        try:
            if self.live:
                self._run_live()
            else:
                self._run_once()
        finally:
            with self._condition:
                self.done = True
                self._condition.notify_all()

    def _run_once(self) -> None:
        try:
            with open_source(self.spec) as stream:
                self.name, self.live = stream.name, stream.live
                self._read(stream)
        except FacestyleError as error:  # the source's own message, for its end event
            self.error = str(error)
        except Exception as error:  # a decoder failing mid-stream ends this source only
            self.error = f"{self.name}: {type(error).__name__}: {error}"

    def _run_live(self) -> None:
        """Read, and when the source is lost, reopen it after growing delays, until stopped."""
        spec, delays = self.spec, None  # delays: the backoff of the current loss, None while connected
        while not self._stop:
            try:
                with open_source(spec, self.reconnect.stall_timeout_s, self.reconnect.open_timeout_s) as stream:
                    self.name = stream.name
                    if delays is not None:
                        delays = None
                        self.reconnects += 1
                        self._hand_out("reconnected")
                    reason = self._read(stream)
            except FacestyleError as error:
                reason = str(error)
            except Exception as error:  # a decoder failing mid-stream
                reason = f"{self.name}: {type(error).__name__}: {error}"
            spec = spec.source if isinstance(spec, VideoSource) else spec  # closed now: reopened from its source
            if self._stop:
                return
            if delays is None:  # a new loss; failed attempts to reopen are not new losses
                delays = self.reconnect.delays()
                self._hand_out("source_lost", reason)
            self._pause(next(delays))

    def _pause(self, delay: float) -> None:
        self.delays.append(delay)
        with self._condition:
            self._condition.wait_for(lambda: self._stop, timeout=delay)

    def _hand_out(self, event: str, error: str | None = None) -> None:
        with self._condition:
            self._buffer.append(Event(event, self.name, None, None, time.monotonic() - self._started, error))
            self._condition.notify_all()

    def _read(self, stream) -> str:
        """Frames into the buffer until the stream ends or the reader stops; why it ended, for a live source."""
        started = last = time.monotonic()
        for frame in stream:
            last = time.monotonic()
            if self.live:  # one index and clock across reconnections
                frame = Frame(self.frames, last - self._started, frame.pixels)
            elif self._realtime:  # a file shown at its own rate: a late consumer drops frames
                time.sleep(max(0.0, frame.time_s - (time.monotonic() - started)))
            if not self._put(frame):
                return "stopped"
        if time.monotonic() - last >= self.reconnect.stall_timeout_s * 0.9:  # FFmpeg's read timeout ended it
            return f"{self.name}: no frame for {self.reconnect.stall_timeout_s:g} s"
        return f"{self.name}: the stream ended"

    def _put(self, frame: Frame) -> bool:
        """``frame`` into the buffer, once there is room (or over the oldest, for a source that drops); False if
        the reader was stopped."""
        with self._condition:
            while not self._stop and self._waiting >= self._capacity and not self._drops:
                self._condition.wait()
            if self._stop:
                return False
            if self._waiting >= self._capacity:
                self._drop_oldest()
            self._buffer.append(frame)
            self._waiting += 1
            self.frames += 1
            self._condition.notify_all()
        return True

    def _drop_oldest(self) -> None:
        oldest = next(i for i, item in enumerate(self._buffer) if isinstance(item, Frame))
        del self._buffer[oldest]
        self._waiting -= 1
        self.dropped += 1

    @property
    def _drops(self) -> bool:
        return self.live or self._realtime

    @property
    def _holds_up(self) -> bool:
        """A file read in order that has no frame ready yet: a tick waits for it, so that the files' frames
        go through in the same ticks however fast each is decoded."""
        return not self._drops and not self.done and not self._buffer

    def take(self) -> list:
        """The events waiting up to the oldest frame, and that frame (the condition held by the caller)."""
        taken = []
        while self._buffer:
            taken.append(self._buffer.popleft())
            if isinstance(taken[-1], Frame):
                self._waiting -= 1
                break
        if taken:
            self._condition.notify_all()
        return taken

    @property
    def finished(self) -> bool:
        """Ended and every frame taken."""
        return self.done and not self._buffer

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the source to end (a file read to its end, or a failure); True if it has."""
        self._thread.join(timeout)
        return self.done

    def stop(self, wait: float = STOP_WAIT_S) -> None:
        """Stop reading; wait up to ``wait`` seconds for the thread (a read or an open in OpenCV is not cut short,
        and the thread, a daemon, ends after it)."""
        with self._condition:
            self._stop = True
            self._condition.notify_all()
        if wait and self._thread.is_alive():
            self._thread.join(timeout=wait)


class Sources:
    """Readers over ``specs`` (video files, camera indices, URLs), started on entering. ``reconnect``: when a
    live source is lost and how soon it is reopened (see :class:`Reconnect`)."""

    def __init__(self, specs, realtime: bool = False, reconnect: Reconnect | None = None):
        self._condition = threading.Condition()
        self.readers = [SourceReader(spec, self._condition, realtime, reconnect) for spec in specs]

    def __enter__(self) -> Sources:
        for reader in self.readers:
            reader.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every reader, then wait for them all, STOP_WAIT_S at most in all."""
        for reader in self.readers:
            reader.stop(wait=0)
        deadline = time.monotonic() + STOP_WAIT_S
        for reader in self.readers:
            reader.stop(wait=max(0.0, deadline - time.monotonic()))

    def ticks(self):
        """Lists of (reader, frame): each waits for at least one frame (and for a frame of every file read in order),
        then takes one from every source that has one, with the events (``source_lost``, ``reconnected``) of a live
        source before it, in (reader, Event) pairs. Readers that ended since the last tick come with frame None
        (once each); stops when all have ended (a live source ends only when its reader is stopped)."""
        reported = set()

        def ready() -> bool:
            if all(r in reported for r in self.readers):
                return True
            return (not any(r._holds_up for r in self.readers)
                    and any(r._buffer or (r.done and r not in reported) for r in self.readers))

        while True:
            with self._condition:
                self._condition.wait_for(ready)
                tick = [(r, item) for r in self.readers for item in r.take()]
                ended = [r for r in self.readers if r.finished and r not in reported]
            reported.update(ended)
            if not tick and not ended:
                return
            yield tick + [(r, None) for r in ended]
