"""Video files and cameras: watch a stream for faces, or stylise a video without flicker.

>>> with open_source("door.mp4") as source:            # or 0 / "0": the first camera
...     for frame in source:                             # frame.pixels: (H, W, 3) uint8 RGB
...         print(frame.index, frame.time_s)
>>> watch("door.mp4", analyzer, gallery, out="annotated.mp4", json_lines=sys.stdout)
>>> stylize_video("in.mp4", "out.mp4", stylizer, smooth=0.8)   # {"frames", "fps", "flicker", ...}

OpenCV (the ``video`` extra) is imported only when a stream is opened, so the rest of the runtime
installs and imports without it. Output videos are written to a temporary file beside the target
and renamed over it at the end, so an error never leaves a half-written video behind.

Temporal smoothing (``stylize_video(smooth=...)``): a feed-forward style network stylises each
frame on its own, and tiny changes of the input (sensor noise, compression) move its texture
around, so a still scene flickers. The output is therefore an exponential moving average of the
stylised frames, but a motion-aware one: per pixel, the previous output keeps the weight

    w = smooth * exp(-|Δinput| / motion_scale)

where |Δinput| is the change of the (slightly blurred) input from the previous input frame. Where the
scene is still, w ~ smooth and the texture settles; where something moves, w ~ 0 and the output is the
fresh stylised frame, so moving content does not leave ghosts or lag behind. The input is blurred
before differencing so that pixel noise (what smoothing is meant to absorb) does not count as motion.
This needs no optical flow and costs a few array operations per frame.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BadInputError, MissingDependencyError

DEFAULT_FPS = 30.0  # what a camera that does not report its rate is written at
MOTION_SCALE = 6.0  # grey levels of input change at which the smoothing weight falls to 1/e (37%)
MOTION_BLUR = 5  # box blur (pixels) of the input before differencing: noise must not look like motion
VIDEO_CODEC = "mp4v"

KNOWN_COLOUR = (40, 220, 40)  # RGB: an enrolled person
UNKNOWN_COLOUR = (240, 60, 40)  # a face beyond the threshold
PLAIN_COLOUR = (250, 200, 0)  # a face with no gallery to ask


def _cv2():
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("video files and cameras need OpenCV: pip install 'facestyle[video]'") from None
    return cv2


# -- reading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    index: int  # 0-based position in the stream
    time_s: float  # from the file's frame rate, or wall time since a camera was opened
    pixels: np.ndarray  # (H, W, 3) uint8 RGB


class VideoSource:
    """An opened camera or video file; iterate it for :class:`Frame` objects. Open with :func:`open_source`."""

    def __init__(self, source: int | str | Path):
        cv2 = _cv2()
        self.camera = _camera_index(source)
        self.name = f"camera {self.camera}" if self.camera is not None else str(source)
        self.path = Path(source) if self.camera is None else None
        if self.camera is None and not Path(source).is_file():
            raise BadInputError(f"{self.name}: no such video file (give a video file, or a camera index such as 0)")
        self._capture = cv2.VideoCapture(self.camera if self.camera is not None else str(source))
        if not self._capture.isOpened():
            self._capture.release()
            what = "no such camera, or it is in use" if self.camera is not None else "not a video OpenCV can decode"
            raise BadInputError(f"{self.name}: cannot be opened ({what})")
        self._first = self._read_bgr()
        if self._first is None:
            self.close()
            raise BadInputError(f"{self.name}: opened, but not one frame could be read from it")
        reported = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported) if reported and reported > 0 else DEFAULT_FPS
        self.height, self.width = self._first.shape[:2]
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if self.camera is None and count > 0 else None  # a camera has no end

    def _read_bgr(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        return frame if ok and frame is not None else None

    def __iter__(self) -> Iterator[Frame]:
        cv2 = _cv2()
        started, index, bgr = time.monotonic(), 0, self._first
        self._first = None  # frames are read once: a second iteration continues the stream
        if bgr is None:
            bgr = self._read_bgr()
        while bgr is not None:
            # Files: the time the frame is meant to be shown; cameras: when it arrived.
            time_s = time.monotonic() - started if self.camera is not None else index / self.fps
            yield Frame(index, time_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
            bgr = self._read_bgr()

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _camera_index(source) -> int | None:
    if isinstance(source, bool):  # a bool is an int to Python, but never a camera the caller meant
        raise BadInputError(f"source {source!r}: expected a camera index or a video file")
    if isinstance(source, int):
        return source
    if isinstance(source, str) and source.strip().isdigit():
        return int(source)
    return None


def open_source(source: int | str | Path | VideoSource) -> VideoSource:
    """Open a camera (an int, or a string of digits: its index) or a video file, reading its first frame now.

    Raises BadInputError naming the source when it cannot be opened or gives no frame, so a wrong
    path or an absent camera fails at once instead of looping over nothing. A source already opened
    is returned as it is (callers that needed its frame count first pass it on without reopening).
    """
    return source if isinstance(source, VideoSource) else VideoSource(source)


# -- writing ----------------------------------------------------------------------------------
class VideoOutput:
    """Writes RGB frames to a video atomically: a temporary file beside ``path``, renamed over it by :meth:`commit`."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]):
        cv2 = _cv2()
        self.path = Path(path)
        self.size = size  # (width, height)
        # The temporary file keeps the extension: OpenCV picks the container from it.
        self._partial = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial{self.path.suffix}")
        self._writer = cv2.VideoWriter(str(self._partial), cv2.VideoWriter_fourcc(*VIDEO_CODEC), fps, size)
        if not self._writer.isOpened():
            self._partial.unlink(missing_ok=True)
            raise BadInputError(
                f"{self.path}: cannot write a {VIDEO_CODEC} video there (use a .mp4 file in a writable folder)")

    def write(self, rgb: np.ndarray) -> None:
        cv2 = _cv2()
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise BadInputError(
                f"{self.path}: frame of {rgb.shape[1]}x{rgb.shape[0]}, the video is {self.size[0]}x{self.size[1]}")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))

    def commit(self) -> None:
        self._writer.release()
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        self._writer.release()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> "VideoOutput":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


# -- flicker ----------------------------------------------------------------------------------
class FlickerMeter:
    """Accumulates the mean absolute change (0..255) between consecutive frames, one frame at a time."""

    def __init__(self):
        self._previous: np.ndarray | None = None
        self._total, self._pairs = 0.0, 0

    def add(self, frame: np.ndarray) -> None:
        current = np.asarray(frame, np.float32)
        if self._previous is not None:
            if current.shape != self._previous.shape:
                raise BadInputError(f"flicker: frame of shape {current.shape} after one of {self._previous.shape}")
            self._total += float(np.abs(current - self._previous).mean())
            self._pairs += 1
        self._previous = current

    @property
    def value(self) -> float | None:
        """None until two frames were seen: change needs a pair."""
        return self._total / self._pairs if self._pairs else None


def flicker(frames: Iterable[np.ndarray]) -> float:
    """The mean absolute frame-to-frame change of a sequence, on the 0..255 scale.

    On a static scene this is the flicker: what changes although nothing moved.
    """
    meter = FlickerMeter()
    for frame in frames:
        meter.add(frame)
    if meter.value is None:
        raise BadInputError("flicker: needs at least 2 frames to measure a change")
    return meter.value


# -- watching for faces -----------------------------------------------------------------------
def _analyse(frame: np.ndarray, analyzer, gallery, threshold: float | None) -> list[dict]:
    """Boxes, and with a gallery identities: every face of the frame embedded and searched in one batch."""
    if gallery is None:
        detections = analyzer.detector.detect(frame, upsample=analyzer.upsample)  # no names wanted: no embedding
        return [{"box": [int(v) for v in box], "identity": None, "distance": None} for box in detections.boxes]
    from .face.gallery import identify_photo

    return [
        {"box": face["box"], "identity": face["identity"],
         "distance": face["matches"][0]["distance"] if face["matches"] else None}
        for face in identify_photo(gallery, analyzer, frame, threshold, top_k=1)
    ]


def _label(face: dict) -> str | None:
    if face["identity"] is None:
        return None
    if face["distance"] is None:
        return face["identity"]
    return f"{face['identity']} {face['distance']:.2f}"


def _colour(face: dict) -> tuple[int, int, int]:
    if face["identity"] is None:
        return PLAIN_COLOUR
    from .face.gallery import UNKNOWN

    return UNKNOWN_COLOUR if face["identity"] == UNKNOWN else KNOWN_COLOUR


def annotate(frame: np.ndarray, faces: list[dict], fps: float | None) -> np.ndarray:
    """A copy of an RGB frame with each face's box and label, and the processing rate, drawn on it."""
    cv2 = _cv2()
    canvas = np.ascontiguousarray(frame).copy()
    scale = max(0.4, min(canvas.shape[:2]) / 600)
    thickness = max(1, round(2 * scale))
    for face in faces:
        left, top, right, bottom = face["box"]
        cv2.rectangle(canvas, (left, top), (right, bottom), _colour(face), thickness)
        label = _label(face)
        if label:
            _put_label(canvas, label, left, top, bottom, _colour(face), scale, thickness)
    if fps is not None:
        _put_label(canvas, f"{fps:.1f} fps", 0, 0, 0, (255, 255, 255), scale, thickness)  # top left
    return canvas


def _put_label(canvas, text: str, left: int, top: int, bottom: int, colour, scale: float, thickness: int) -> None:
    """Dark text on a box of ``colour``, just above ``top`` (below ``bottom`` where there is no room above)."""
    cv2 = _cv2()
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    box_height = height + baseline + 4
    y0 = top - box_height if top - box_height >= 0 else bottom + 1
    cv2.rectangle(canvas, (left, y0), (left + width + 4, y0 + box_height), colour, cv2.FILLED)
    cv2.putText(canvas, text, (left + 2, y0 + height + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)


def watch(source, analyzer, gallery=None, out=None, json_lines=None, threshold: float | None = None,
          max_frames: int | None = None, every: int = 1, progress=None) -> dict:
    """Find (and with a gallery, name) the faces of a camera or video stream.

    Every ``every``-th frame is analysed: detection, then all of its faces embedded in one batch and
    searched in ``gallery`` (name, or "unknown" beyond ``threshold``, default the model's). ``out``:
    write an annotated video (boxes, names and distances, the fps) of every frame read, the frames in
    between analysed ones showing the last faces found. ``json_lines``: a text file object that gets
    one line per analysed frame, ``{"frame", "time_s", "faces": [{"box", "identity", "distance"}],
    "fps"}`` (fps: frames handled per second so far, reading and writing included).

    A camera has no end: Ctrl-C stops the watch cleanly, the annotated video keeping what was seen.
    Returns ``{"source", "frames", "analysed", "faces", "fps", "interrupted"}``.
    """
    _check_count("every", every, minimum=1)
    if max_frames is not None:
        _check_count("max_frames", max_frames, minimum=1)
    with open_source(source) as stream:
        writer = VideoOutput(out, stream.fps, (stream.width, stream.height)) if out is not None else None
        try:
            summary = _watch_frames(stream, analyzer, gallery, writer, json_lines, threshold, max_frames, every, progress)
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        if writer is not None:
            writer.commit()
    return {"source": stream.name, **summary}


def _watch_frames(stream, analyzer, gallery, writer, json_lines, threshold, max_frames, every, progress) -> dict:
    started = time.perf_counter()
    frames = analysed = faces_seen = 0
    faces, fps, interrupted = [], None, False
    try:
        for frame in stream:
            if frame.index % every == 0:
                faces = _analyse(frame.pixels, analyzer, gallery, threshold)
                analysed += 1
                faces_seen += len(faces)
            frames += 1
            fps = frames / max(time.perf_counter() - started, 1e-9)
            if writer is not None:
                writer.write(annotate(frame.pixels, faces, fps))
            if json_lines is not None and frame.index % every == 0:
                _write_json_line(json_lines, frame, faces, fps)
            if progress is not None:
                progress.update(postfix=f"{len(faces)} face(s) {fps:.1f} fps")
            if frames == max_frames:
                break  # checked after the frame, not before the next: a camera would block on one more read
    except KeyboardInterrupt:
        interrupted = True  # the normal way to stop a camera: finish the outputs with what was seen
    elapsed = time.perf_counter() - started
    return {"frames": frames, "analysed": analysed, "faces": faces_seen,
            "fps": round(frames / elapsed, 3) if frames else 0.0, "interrupted": interrupted}


def _write_json_line(stream, frame: Frame, faces: list[dict], fps: float) -> None:
    record = {"frame": frame.index, "time_s": round(frame.time_s, 6), "faces": faces, "fps": round(fps, 3)}
    stream.write(json.dumps(record) + "\n")
    stream.flush()  # a reader following a live camera sees each frame as it is done


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInputError(f"{name} {value!r}: expected a whole number of at least {minimum}")


# -- stylising video --------------------------------------------------------------------------
class TemporalSmoother:
    """Motion-aware exponential moving average of stylised frames (see the module's docstring)."""

    def __init__(self, smooth: float, motion_scale: float = MOTION_SCALE):
        if not 0.0 <= smooth < 1.0:
            raise BadInputError(f"smooth {smooth}: expected a value from 0 (no smoothing) up to, not including, 1")
        if not motion_scale > 0:
            raise BadInputError(f"motion scale {motion_scale}: expected a positive number of grey levels")
        self.smooth, self.motion_scale = float(smooth), float(motion_scale)
        self._previous_input: np.ndarray | None = None  # the last input frame, blurred, float32
        self._previous_output: np.ndarray | None = None  # float32, what the last frame came out as

    def __call__(self, frame: np.ndarray, stylised: np.ndarray) -> np.ndarray:
        """The output for one frame: its input (to see motion) and its stylised version, both uint8 RGB."""
        if self.smooth == 0.0:
            return stylised
        current = self._blurred(frame)
        fresh = stylised.astype(np.float32)
        if self._previous_output is None or self._previous_output.shape != fresh.shape:
            output = fresh
        else:
            change = np.abs(current - self._previous_input).mean(axis=2, keepdims=True)
            keep = self.smooth * np.exp(-change / self.motion_scale)
            output = keep * self._previous_output + (1.0 - keep) * fresh
        self._previous_input, self._previous_output = current, output
        return np.clip(np.rint(output), 0, 255).astype(np.uint8)

    def _blurred(self, frame: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        return cv2.blur(frame.astype(np.float32), (MOTION_BLUR, MOTION_BLUR))


def stylize_video(src, dst, stylizer, smooth: float = 0.0, strength: float = 1.0, max_side: int | None = None,
                  max_frames: int | None = None, progress=None, motion_scale: float = MOTION_SCALE) -> dict:
    """Stylise every frame of the video ``src`` into ``dst`` (mp4v), at the source's frame rate.

    ``smooth`` in [0, 1): temporal smoothing against flicker (motion-aware, see the module's
    docstring); 0 stylises each frame on its own. ``strength`` and ``max_side`` are the stylizer's
    (the output has the source's size, or its size fitted within ``max_side``). ``dst`` appears only
    once complete. Returns ``{"frames", "fps", "size", "smooth", "flicker", "input_flicker",
    "seconds"}``: flicker is the mean frame-to-frame change of the output frames as stylised (before
    video compression), input_flicker the same of the source frames, both 0..255.
    """
    from .style.stylizer import fit_within

    smoother = TemporalSmoother(smooth, motion_scale)  # checks smooth before any work
    if max_frames is not None:
        _check_count("max_frames", max_frames, minimum=1)
    started = time.perf_counter()
    output_flicker, input_flicker = FlickerMeter(), FlickerMeter()
    with open_source(src) as stream:
        if stream.path is not None and Path(dst).resolve() == stream.path.resolve():
            raise BadInputError(f"{dst}: the output would overwrite the video being read; choose another file")
        writer, frames = None, 0
        try:
            for frame in stream:
                # Fitted here rather than by the stylizer: the smoother compares inputs at the output's size.
                pixels = fit_within(frame.pixels, max_side) if max_side is not None else frame.pixels
                styled = smoother(pixels, stylizer.stylize(pixels, strength=strength))
                if writer is None:  # sized by the first result, after max_side
                    writer = VideoOutput(dst, stream.fps, (styled.shape[1], styled.shape[0]))
                writer.write(styled)
                output_flicker.add(styled)
                input_flicker.add(pixels)
                frames += 1
                if progress is not None:
                    progress.update()
                if frames == max_frames:
                    break
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        writer.commit()
    return {"frames": frames, "fps": stream.fps, "size": list(writer.size), "smooth": smoother.smooth,
            "flicker": _rounded(output_flicker.value), "input_flicker": _rounded(input_flicker.value),
            "seconds": round(time.perf_counter() - started, 3)}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
