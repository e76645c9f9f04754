"""Stylising a video without flicker: temporal smoothing, the flicker measure, and :func:`stylize_video`.

>>> stylize_video("in.mp4", "out.mp4", stylizer, smooth=0.8)   # {"frames", "fps", "flicker", ...}

Frames come from and go to ``facestyle.video`` (OpenCV, imported only when a stream is opened).

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

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..video import VideoOutput, check_count, open_source, opencv
from .stylizer import fit_within

MOTION_SCALE = 6.0  # grey levels of input change at which the smoothing weight falls to 1/e (37%)
MOTION_BLUR = 5  # box blur (pixels) of the input before differencing: noise must not look like motion


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
        cv2 = opencv()
        return cv2.blur(frame.astype(np.float32), (MOTION_BLUR, MOTION_BLUR))


def stylize_video(src, dst, stylizer, smooth: float = 0.0, strength: float = 1.0, max_side: int | None = None,
                  max_frames: int | None = None, progress=None, motion_scale: float = MOTION_SCALE) -> dict:
    """Stylise every frame of the video ``src`` into ``dst`` (H.264 where OpenCV can write it, else mp4v),
    at the source's frame rate.

    ``smooth`` in [0, 1): temporal smoothing against flicker (motion-aware, see the module's
    docstring); 0 stylises each frame on its own. ``strength`` and ``max_side`` are the stylizer's
    (the output has the source's size, or its size fitted within ``max_side``). ``dst`` appears only
    once complete. Returns ``{"frames", "fps", "size", "smooth", "flicker", "input_flicker",
    "seconds"}``: flicker is the mean frame-to-frame change of the output frames as stylised (before
    video compression), input_flicker the same of the source frames, both 0..255.
    """
    smoother = TemporalSmoother(smooth, motion_scale)  # checks smooth before any work
    if max_frames is not None:
        check_count("max_frames", max_frames, minimum=1)
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
            "seconds": round(time.perf_counter() - started, 3), "codec": writer.codec, "note": writer.note}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
