"""Several video sources read at once, each by its own thread, handed out a tick at a time.

>>> with Sources(["door.mp4", "0", "rtsp://cam/stream"]) as sources:
...     for tick in sources.ticks():                # [(SourceReader, Frame), ...]: one frame per source at most
...         ...

A live source (a camera, a URL) keeps one frame: a newer one replaces a frame not yet taken, and the
replaced frame is counted as dropped, so a slow consumer sees the present, not a growing backlog. A file is
read in order and never dropped (its reader waits for the consumer), unless ``realtime``: then it is paced
at its frame rate and dropped like a camera. Files read in order go through in step: a tick waits for a
frame of each (decoding is never the wait that matters), so their frames share the embedding batches the
same way on every run. A source that cannot be opened or ends stops alone; the others go on.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ..errors import FacestyleError
from ..video import Frame, VideoSource, camera_index, is_url, open_source

FILE_BUFFER = 4  # frames a file's reader decodes ahead


def _is_live(spec) -> bool:
    """A camera or a URL (known before it is opened, so a slow one holds nothing up)."""
    return spec.live if isinstance(spec, VideoSource) else camera_index(spec) is not None or is_url(spec)


class SourceReader:
    """One source's thread and buffer. ``frames``: read; ``dropped``: replaced before they were taken."""

    def __init__(self, spec, condition: threading.Condition, realtime: bool):
        self.spec = spec
        self.name = str(spec)
        self.frames = self.dropped = 0
        self.error: str | None = None
        self.done = False
        self.live = _is_live(spec)
        self._realtime = realtime
        self._condition = condition
        self._buffer: deque[Frame] = deque()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"source {self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def _capacity(self) -> int:
        return 1 if self.live or self._realtime else FILE_BUFFER

    def _run(self) -> None:
        try:
            with open_source(self.spec) as stream:
                self.name, self.live = stream.name, stream.live
                self._read(stream)
        except FacestyleError as error:  # the source's own message, for its end event
            self.error = str(error)
        except Exception as error:  # a decoder failing mid-stream ends this source only
            self.error = f"{self.name}: {type(error).__name__}: {error}"
        finally:
            with self._condition:
                self.done = True
                self._condition.notify_all()

    def _read(self, stream) -> None:
        started = time.monotonic()
        for frame in stream:
            if self._realtime and not self.live:  # a file shown at its own rate: a late consumer drops frames
                time.sleep(max(0.0, frame.time_s - (time.monotonic() - started)))
            with self._condition:
                while not self._stop and len(self._buffer) >= self._capacity and not self._drops:
                    self._condition.wait()
                if self._stop:
                    return
                if len(self._buffer) >= self._capacity:
                    self._buffer.popleft()
                    self.dropped += 1
                self._buffer.append(frame)
                self.frames += 1
                self._condition.notify_all()

    @property
    def _drops(self) -> bool:
        return self.live or self._realtime

    @property
    def _holds_up(self) -> bool:
        """A file read in order that has no frame ready yet: a tick waits for it, so that the files' frames
        go through in the same ticks however fast each is decoded."""
        return not self._drops and not self.done and not self._buffer

    def take(self) -> Frame | None:
        """The oldest frame waiting (the condition held by the caller), or None."""
        if not self._buffer:
            return None
        frame = self._buffer.popleft()
        self._condition.notify_all()
        return frame

    @property
    def finished(self) -> bool:
        """Ended and every frame taken."""
        return self.done and not self._buffer

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the source to end (a file read to its end, or a failure); True if it has."""
        self._thread.join(timeout)
        return self.done

    def stop(self) -> None:
        with self._condition:
            self._stop = True
            self._condition.notify_all()
        self._thread.join(timeout=5)


class Sources:
    """Readers over ``specs`` (video files, camera indices, URLs), started on entering."""

    def __init__(self, specs, realtime: bool = False):
        self._condition = threading.Condition()
        self.readers = [SourceReader(spec, self._condition, realtime) for spec in specs]

    def __enter__(self) -> Sources:
        for reader in self.readers:
            reader.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for reader in self.readers:
            reader.stop()

    def ticks(self):
        """Lists of (reader, frame): each waits for at least one frame (and for a frame of every file read in order),
        then takes one from every source that has one. Readers that ended since the last tick come with frame None
        (once each); stops when all have ended."""
        reported = set()

        def ready() -> bool:
            if all(r in reported for r in self.readers):
                return True
            return (not any(r._holds_up for r in self.readers)
                    and any(r._buffer or (r.done and r not in reported) for r in self.readers))

        while True:
            with self._condition:
                self._condition.wait_for(ready)
                tick = [(r, f) for r in self.readers if (f := r.take()) is not None]
                ended = [r for r in self.readers if r.finished and r not in reported]
            reported.update(ended)
            if not tick and not ended:
                return
            yield tick + [(r, None) for r in ended]
