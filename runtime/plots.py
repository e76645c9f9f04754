"""Small PNG plots drawn with Pillow, so the runtime needs no plotting library."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .manifest import atomic_write_bytes

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def save_roc_png(path: str | Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, min_far: float = 1e-3) -> Path:
    """ROC curves, TAR against FAR on a log axis from ``min_far`` to 1; one colour per label."""
    width, height, margin = 640, 480, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = margin, 40, width - 20, height - margin
    decades = int(round(-math.log10(min_far)))

    def to_xy(far: float, tar: float) -> tuple[float, float]:
        x = (math.log10(max(far, min_far)) + decades) / decades
        return left + x * (right - left), bottom - tar * (bottom - top)

    for d in range(decades + 1):  # vertical grid at each decade
        x, _ = to_xy(10.0 ** (d - decades), 0)
        draw.line([(x, top), (x, bottom)], fill=(225, 225, 225))
        draw.text((x - 14, bottom + 6), f"1e-{decades - d}" if d < decades else "1", fill="black")
    for i in range(6):
        _, y = to_xy(1, i / 5)
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((left - 30, y - 6), f"{i / 5:.1f}", fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    for i, (label, (far, tar)) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        draw.line([to_xy(f, t) for f, t in zip(far, tar)], fill=colour, width=2)
        draw.text((left + 200, bottom - 24 - 16 * i), label, fill=colour)  # lower right: ROC curves hug the top
    draw.text((left + 110, 12), title, fill="black")
    draw.text(((left + right) // 2 - 60, height - 24), "false accept rate (log)", fill="black")
    draw.text((8, top - 24), "true accept rate", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
