"""Generated camera scenes for the stream tests: real LFW faces pasted onto a real photo, moving, and written
as videos with OpenCV.

A face is the central 150x150 of a deep-funneled LFW photo (the face about 100 px high); the background is a
BSDS500 photo. ``scene`` draws the faces in the order given, so a later face passes in front of an earlier one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import SHARED_DATA, require_shared

LFW = SHARED_DATA / "lfw-view1" / "lfw-deepfunneled"
BSDS = SHARED_DATA / "content" / "bsds500"
FACE_SIZE = 150


def face_patch(person: str, number: int = 1) -> np.ndarray:
    from facestyle.images import load_image

    photo = load_image(require_shared(LFW / person / f"{person}_{number:04d}.jpg"))
    margin = (photo.shape[0] - FACE_SIZE) // 2
    return photo[margin : margin + FACE_SIZE, margin : margin + FACE_SIZE]


def background(width: int = 480, height: int = 320) -> np.ndarray:
    from PIL import Image

    path = sorted(require_shared(BSDS).rglob("*.jpg"))[0]
    return np.asarray(Image.open(path).convert("RGB").resize((width, height)))


def scene(paths, count: int, width: int = 480, height: int = 320) -> list[np.ndarray]:
    """``count`` frames; ``paths``: [(patch, position(frame) -> (left, top))], drawn in that order."""
    base = background(width, height)
    frames = []
    for i in range(count):
        frame = base.copy()
        for patch, position in paths:
            left, top = (int(round(v)) for v in position(i))
            paste(frame, patch, left, top)
        frames.append(frame)
    return frames


def paste(frame: np.ndarray, patch: np.ndarray, left: int, top: int) -> None:
    """``patch`` drawn over ``frame`` at (left, top), the part outside the frame cut off."""
    height, width = frame.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + patch.shape[1], width), min(top + patch.shape[0], height)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]


def write_video(path: Path, frames, fps: float = 12.0) -> Path:
    import cv2

    size = (frames[0].shape[1], frames[0].shape[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for frame in frames:
        writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    return path
