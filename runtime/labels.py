"""Where text labels go on an image: beside the box each belongs to, inside the image, none over another.

Pure geometry (no OpenCV), so the drawing code (``facestyle.streams.annotate``) and its tests share it.
A rectangle is ``(x, y, width, height)`` in pixels: it covers columns x .. x+width-1 and rows y .. y+height-1.
"""

from __future__ import annotations

Rect = tuple[int, int, int, int]


def overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def inside(rect: Rect, width: int, height: int) -> bool:
    x, y, w, h = rect
    return x >= 0 and y >= 0 and x + w <= width and y + h <= height


def place_labels(boxes, sizes, width: int, height: int, taken: list[Rect] = ()) -> list[Rect]:
    """One rectangle per label: ``boxes`` are the (left, top, right, bottom) boxes the labels belong to,
    ``sizes`` each label's (width, height). Each label goes just above its box where that is free and inside
    the image, else just below it, else inside the box's top, else at the free place nearest to "above".
    Labels never overlap each other nor the ``taken`` rectangles (e.g. an fps counter), and stay inside the
    image (one larger than the image is cut to it). Only where the image has no free place left at all (more
    text than image) does a label overlap another, at its own place above the box."""
    placed = list(taken)
    out = []
    for (left, top, _right, bottom), (w, h) in zip(boxes, sizes):
        w, h = max(1, min(int(w), width)), max(1, min(int(h), height))
        x = min(max(int(left), 0), width - w)  # a box reaching past a side still gets its label inside
        wanted = [(x, int(top) - h), (x, int(bottom) + 1), (x, int(top))]  # above, below, inside the box's top
        rect = next((r for r in ((x, y, w, h) for x, y in wanted) if _free(r, width, height, placed)), None)
        if rect is None:
            rect = _nearest_free(wanted[0], w, h, width, height, placed) or _clamped(wanted[0], w, h, width, height)
        placed.append(rect)
        out.append(rect)
    return out


def _free(rect: Rect, width: int, height: int, placed: list[Rect]) -> bool:
    return inside(rect, width, height) and not any(overlaps(rect, other) for other in placed)


def _clamped(point: tuple[int, int], w: int, h: int, width: int, height: int) -> Rect:
    x, y = point
    return min(max(x, 0), width - w), min(max(y, 0), height - h), w, h


def _nearest_free(point: tuple[int, int], w: int, h: int, width: int, height: int, placed: list[Rect]) -> Rect | None:
    """The free place nearest ``point``. Any free place slides left and up until an edge of the image or of
    a placed rectangle stops it, so the positions at those edges (plus the wanted point, clamped) are the
    only ones to try: none free means the image has no room."""
    x0, y0, _, _ = _clamped(point, w, h, width, height)
    xs = {0, x0, width - w} | {r[0] + r[2] for r in placed} | {r[0] - w for r in placed}
    ys = {0, y0, height - h} | {r[1] + r[3] for r in placed} | {r[1] - h for r in placed}
    candidates = sorted(((x, y) for x in xs for y in ys), key=lambda p: (abs(p[1] - point[1]) + abs(p[0] - point[0]), p))
    return next((r for r in ((x, y, w, h) for x, y in candidates) if _free(r, width, height, placed)), None)
