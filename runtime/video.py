"""Video files and cameras: frames in (:func:`open_source`), frames out (:class:`VideoOutput`).

>>> with open_source("door.mp4") as source:            # or 0 / "0": the first camera
...     for frame in source:                             # frame.pixels: (H, W, 3) uint8 RGB
...         print(frame.index, frame.time_s)

What is done with the frames lives with each kind: watching for faces in ``facestyle.streams``,
stylising a video in ``facestyle.style.video``. This module is the one place that imports OpenCV (the
``video`` extra), and only when a stream is opened, so the rest of the runtime installs and imports
without it. Output videos are written to a temporary file beside the target and renamed over it at
the end, so an error never leaves a half-written video behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .errors import BadInputError, MissingDependencyError

DEFAULT_FPS = 30.0  # what a camera that does not report its rate is written at
H264_CODEC = "avc1"  # H.264, played everywhere; only where the installed OpenCV's FFmpeg has an encoder for it
VIDEO_CODEC = "mp4v"  # MPEG-4 part 2: every OpenCV build writes it
_H264_WORKS: dict[str, bool] = {}  # per container suffix, probed once per process


def opencv():
    """The ``cv2`` module, imported on first use; MissingDependencyError naming the extra without it."""
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("video files and cameras need OpenCV: pip install 'facestyle[video]'") from None
    return cv2


def check_count(name: str, value, minimum: int) -> None:
    """A frame count or stride given by the caller: a whole number (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInputError(f"{name} {value!r}: expected a whole number of at least {minimum}")


# -- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    index: int  # 0-based position in the stream
    time_s: float  # from the file's frame rate, or wall time since a camera was opened
    pixels: np.ndarray  # (H, W, 3) uint8 RGB


class VideoSource:
    """An opened camera or video file; iterate it for :class:`Frame` objects. Open with :func:`open_source`."""

    def __init__(self, source: int | str | Path, read_timeout_s: float | None = None,
                 open_timeout_s: float | None = None):
        cv2 = opencv()
        self.source = source  # what it was opened from: a live source is reopened from it
        self.camera = camera_index(source)
        self.name = source_name(source)
        self.live = self.camera is not None or is_url(source)  # frames arrive in real time; the stream has no end
        self.path = Path(source) if not self.live else None
        if not self.live and not Path(source).is_file():
            raise BadInputError(f"{self.name}: no such video file (give a video file, a camera index such as 0, "
                                "or a URL such as rtsp://...)")
        self._capture = _capture(cv2, self.camera if self.camera is not None else str(source), read_timeout_s,
                                 open_timeout_s)
        if not self._capture.isOpened():
            self._capture.release()
            what = ("no such camera, or it is in use" if self.camera is not None else
                    "nothing answers there, or not a stream OpenCV can decode" if self.live else
                    "not a video OpenCV can decode")
            raise BadInputError(f"{self.name}: cannot be opened ({what})")
        self._first = self._read_bgr()
        if self._first is None:
            self.close()
            raise BadInputError(f"{self.name}: opened, but not one frame could be read from it")
        reported = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported) if reported and reported > 0 else DEFAULT_FPS
        self.height, self.width = self._first.shape[:2]
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if not self.live and count > 0 else None  # a camera has no end

    def _read_bgr(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        return frame if ok and frame is not None else None

    def __iter__(self) -> Iterator[Frame]:
        cv2 = opencv()
        started, index, bgr = time.monotonic(), 0, self._first
        self._first = None  # frames are read once: a second iteration continues the stream
        if bgr is None:
            bgr = self._read_bgr()
        while bgr is not None:
            # Files: the time the frame is meant to be shown; cameras and URLs: when it arrived.
            time_s = time.monotonic() - started if self.live else index / self.fps
            yield Frame(index, time_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
            bgr = self._read_bgr()

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _capture(cv2, source: int | str, read_timeout_s: float | None, open_timeout_s: float | None):
    """OpenCV's capture of ``source``. A URL is opened by FFmpeg with the timeouts given (OpenCV's default: 30 s
    each): a server that stops sending ends a read after ``read_timeout_s`` instead of blocking it."""
    timeouts = [(prop, max(1, round(seconds * 1000))) for prop, seconds in (
        (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_timeout_s), (cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_timeout_s))
        if seconds is not None]
    if not timeouts or not is_url(source):
        return cv2.VideoCapture(source)
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, [value for pair in timeouts for value in pair])


def source_name(source) -> str:
    """A source as messages, events and summaries name it: a camera by its index, a URL without its password."""
    camera = camera_index(source)
    if camera is not None:
        return f"camera {camera}"
    if not is_url(source):
        return str(source)
    parts = urlsplit(source)
    if parts.password is None:
        return source
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def camera_index(source) -> int | None:
    if isinstance(source, bool):  # a bool is an int to Python, but never a camera the caller meant
        raise BadInputError(f"source {source!r}: expected a camera index or a video file")
    if isinstance(source, int):
        return source
    if isinstance(source, str) and source.strip().isdigit():
        return int(source)
    return None


def is_url(source) -> bool:
    """A network stream OpenCV opens by URL (rtsp://, http://, https://, ...), not a file path."""
    return isinstance(source, str) and "://" in source and not source.startswith("file://")


def _quietly(make):
    """``make()`` with file descriptor 2 sent to /dev/null: FFmpeg prints its failed encoder probes there."""
    import sys

    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        return make()
    try:
        os.dup2(devnull, 2)
        return make()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_source(source: int | str | Path | VideoSource, read_timeout_s: float | None = None,
                open_timeout_s: float | None = None) -> VideoSource:
    """Open a camera (an int, or a string of digits: its index), a URL (rtsp://, http(s)://: what OpenCV's FFmpeg
    opens) or a video file, reading its first frame now. ``open_timeout_s``, ``read_timeout_s``: how long opening a URL, and
    each read from it, may take (None: OpenCV's default, 30 s).

    Raises BadInputError naming the source when it cannot be opened or gives no frame, so a wrong
    path or an absent camera fails at once instead of looping over nothing. A source already opened
    is returned as it is (callers that needed its frame count first pass it on without reopening).
    """
    return source if isinstance(source, VideoSource) else VideoSource(source, read_timeout_s, open_timeout_s)


# -- writing ----------------------------------------------------------------------------------
class VideoOutput:
    """Writes RGB frames to a video atomically: a temporary file beside ``path``, renamed over it by :meth:`commit`."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]):
        cv2 = opencv()
        self.path = Path(path)
        self.size = size  # (width, height)
        # The temporary file keeps the extension: OpenCV picks the container from it.
        self._partial = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial{self.path.suffix}")
        self._writer, self.codec = None, VIDEO_CODEC
        if _H264_WORKS.get(self.path.suffix, True):
            self._writer = _quietly(lambda: cv2.VideoWriter(str(self._partial), cv2.VideoWriter_fourcc(*H264_CODEC),
                                                            fps, size))
            if self._writer.isOpened():
                self.codec = H264_CODEC
            else:
                self._writer.release()
                self._remove_partial()
                if self.path.parent.is_dir():  # a folder that is not there says nothing about the encoder
                    _H264_WORKS[self.path.suffix] = False
        if self.codec != H264_CODEC:
            self._writer = cv2.VideoWriter(str(self._partial), cv2.VideoWriter_fourcc(*VIDEO_CODEC), fps, size)
        if not self._writer.isOpened():
            self._remove_partial()
            raise BadInputError(
                f"{self.path}: cannot write a {VIDEO_CODEC} video there (use a .mp4 file in a writable folder)")

    @property
    def note(self) -> str | None:
        """Why the video is not H.264, for the user; None when it is."""
        if self.codec == H264_CODEC:
            return None
        return (f"{self.path}: written as MPEG-4 part 2 ({VIDEO_CODEC}): this OpenCV cannot write H.264 "
                f"({H264_CODEC}); re-encode with ffmpeg where a player needs H.264")

    def _remove_partial(self) -> None:
        try:
            self._partial.unlink(missing_ok=True)
        except OSError:  # its folder is not a folder: there is nothing to remove
            pass

    def write(self, rgb: np.ndarray) -> None:
        cv2 = opencv()
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise BadInputError(
                f"{self.path}: frame of {rgb.shape[1]}x{rgb.shape[0]}, the video is {self.size[0]}x{self.size[1]}")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))

    def commit(self) -> None:
        self._writer.release()
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        self._writer.release()
        self._remove_partial()

    def __enter__(self) -> VideoOutput:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
