"""Small PNG charts drawn with Pillow, so the runtime needs no plotting library: ROC curves (LFW
evaluation), and the benchmark's latency bars and throughput lines (``facestyle bench``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .images import encode_image
from .manifest import atomic_write_bytes

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def png_bytes(image: Image.Image) -> bytes:
    return encode_image(np.asarray(image), "PNG")


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
    atomic_write_bytes(path, png_bytes(image))
    return Path(path)


def latency_png(rows: list[dict]) -> bytes:
    """Horizontal bars of p50 latency per benchmark row, on a log axis (peers can be 100x slower)."""
    label_width, bar_area, row_height, top = 430, 420, 16, 40
    width, height = label_width + bar_area + 30, top + row_height * max(len(rows), 1) + 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    values = [r["p50_ms"] for r in rows] or [1.0]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    hi = max(hi, lo + 1)

    def x_of(ms: float) -> float:
        return label_width + (math.log10(ms) - lo) / (hi - lo) * bar_area

    bottom = top + row_height * len(rows)
    for decade in range(lo, hi + 1):
        x = x_of(10.0**decade)
        draw.line([(x, top - 4), (x, bottom)], fill=(225, 225, 225))
        draw.text((x - 12, bottom + 6), f"{10.0 ** decade:g}", fill="black")
    colours = {b: _COLOURS[i % len(_COLOURS)] for i, b in enumerate(dict.fromkeys(r["backend"] for r in rows))}
    for i, row in enumerate(rows):
        y = top + i * row_height
        label = f"{row.get('task', '')} {row['model']} {row['backend']} {row['precision']} b{row['batch']} {row['size']}px"
        draw.text((6, y + 2), label[:70], fill="black")
        draw.rectangle([label_width, y + 2, max(x_of(row["p50_ms"]), label_width + 1), y + row_height - 3],
                       fill=colours[row["backend"]])
    draw.text((label_width, 12), "p50 latency per call, ms (log scale)", fill="black")
    draw.text((label_width, bottom + 22), "ms", fill="black")
    return png_bytes(image)


def throughput_png(rows: list[dict], task: str = "embed") -> bytes:
    """Throughput (items/s) against batch size, one line per backend and precision of ``task``'s rows."""
    width, height, left, top, right, bottom = 640, 420, 70, 40, 460, 360
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    series: dict[str, list[tuple[int, float]]] = {}
    for row in (r for r in rows if r.get("task") == task):
        name = f"{row['backend']} {row['precision']}" + (" (peer)" if row.get("peer") else "")
        series.setdefault(name, []).append((row["batch"], row["throughput"]))
    batches = sorted({b for points in series.values() for b, _ in points}) or [1]
    peak = max((t for points in series.values() for _, t in points), default=1.0) * 1.1

    def xy(batch: int, throughput: float) -> tuple[float, float]:
        x = batches.index(batch) / max(len(batches) - 1, 1)
        return left + x * (right - left), bottom - throughput / peak * (bottom - top)

    for i in range(6):
        y = bottom - i / 5 * (bottom - top)
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((6, y - 6), f"{peak * i / 5:,.0f}", fill="black")
    for batch in batches:
        x, _ = xy(batch, 0)
        draw.text((x - 6, bottom + 6), str(batch), fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    for i, (name, points) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        coords = [xy(b, t) for b, t in sorted(points)]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=2)
        for x, y in coords:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((right + 12, top + 16 * i), name, fill=colour)
    draw.text((left, 12), f"{task}: throughput (items/s) against batch size", fill="black")
    draw.text(((left + right) // 2 - 20, bottom + 24), "batch", fill="black")
    return png_bytes(image)


def save_curves_png(path: str | Path, curves: dict[str, tuple[list[float], list[float]]], title: str,
                    x_label: str, y_label: str, y_range: tuple[float, float] = (0.5, 1.0)) -> Path:
    """Lines of y against x (e.g. held-out accuracy against training steps), one colour per label."""
    width, height, left, top, right, bottom = 640, 420, 60, 40, 620, 360
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    x_max = max((max(xs) for xs, _ in curves.values() if len(xs)), default=1) or 1
    lo, hi = y_range

    def to_xy(x: float, y: float) -> tuple[float, float]:
        return left + x / x_max * (right - left), bottom - (min(max(y, lo), hi) - lo) / (hi - lo) * (bottom - top)

    for i in range(6):
        value = lo + (hi - lo) * i / 5
        _, y = to_xy(0, value)
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((left - 40, y - 6), f"{value:.2f}", fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    for i, (label, (xs, ys)) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [to_xy(x, y) for x, y in zip(xs, ys)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((left + 10, bottom - 20 - 16 * i), label, fill=colour)
    draw.text((left, 12), title, fill="black")
    draw.text(((left + right) // 2 - 40, bottom + 14), f"{x_label} (0 .. {x_max:g})", fill="black")
    draw.text((8, top - 24), y_label, fill="black")
    atomic_write_bytes(path, png_bytes(image))
    return Path(path)
