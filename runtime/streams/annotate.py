"""Faces drawn on a frame or a photo: each box in the colour of what is known about it, with its label.

>>> drawn = annotate(pixels, [{"box": [10, 20, 90, 100], "identity": "ada", "distance": 0.31}], fps=12.5)

A face is a dict as in the JSON results: ``box`` and ``identity`` (a name, "unknown", or None with no gallery),
and when known ``distance``, ``track`` and ``quality``. The label reads ``#track name distance qQUALITY``, each
part only where known. OpenCV is imported only when drawing.
"""

from __future__ import annotations

import numpy as np

from ..face.gallery import UNKNOWN
from ..labels import place_labels
from ..video import opencv

KNOWN_COLOUR = (40, 220, 40)  # RGB: an enrolled person
UNKNOWN_COLOUR = (240, 60, 40)  # a face beyond the threshold
PLAIN_COLOUR = (250, 200, 0)  # a face with no gallery to ask


def label(face: dict) -> str | None:
    """``#3 ada 0.31 q0.82``: the parts of it known (None when none is)."""
    parts = [f"#{face['track']}" if face.get("track") is not None else None, face.get("identity"),
             None if face.get("distance") is None else f"{face['distance']:.2f}",
             None if face.get("quality") is None else f"q{face['quality']:.2f}"]
    return " ".join(part for part in parts if part) or None


def _colour(face: dict) -> tuple[int, int, int]:
    if face.get("identity") is None:
        return PLAIN_COLOUR
    return UNKNOWN_COLOUR if face["identity"] == UNKNOWN else KNOWN_COLOUR


def annotate(frame: np.ndarray, faces: list[dict], fps: float | None) -> np.ndarray:
    """A copy of an RGB frame with each face's box and label, and the processing rate, drawn on it. Labels sit
    beside their box, inside the frame, none over another (facestyle.labels.place_labels)."""
    cv2 = opencv()
    canvas = np.ascontiguousarray(frame).copy()
    height, width = canvas.shape[:2]
    scale = max(0.4, min(height, width) / 600)
    thickness = max(1, round(2 * scale))
    for face in faces:
        left, top, right, bottom = face["box"]
        cv2.rectangle(canvas, (left, top), (right, bottom), _colour(face), thickness)
    labelled = [face for face in faces if label(face)]
    taken = []
    if fps is not None:  # top left, before the faces' labels, which then keep clear of it
        fps_text = f"{fps:.1f} fps"
        w, h = _label_size(fps_text, scale, thickness)
        taken = [(0, 0, min(w, width), min(h, height))]
        _put_label(canvas, fps_text, taken[0], (255, 255, 255), scale, thickness)
    sizes = [_label_size(label(face), scale, thickness) for face in labelled]
    for face, rect in zip(labelled, place_labels([face["box"] for face in labelled], sizes, width, height, taken)):
        _put_label(canvas, label(face), rect, _colour(face), scale, thickness)
    return canvas


def _label_size(text: str, scale: float, thickness: int) -> tuple[int, int]:
    """A label's (width, height): the text with a 2 px margin."""
    cv2 = opencv()
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return width + 4, height + baseline + 4


def _put_label(canvas, text: str, rect, colour, scale: float, thickness: int) -> None:
    """Dark text on a filled ``rect`` (x, y, width, height) of ``colour``."""
    cv2 = opencv()
    x, y, w, h = rect
    (_, text_height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, cv2.FILLED)
    cv2.putText(canvas, text, (x + 2, y + text_height + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)
