"""The picture: a row per unit, its nine patches (each unit's receptive field in the input), values below.

Patches are cut from what the model saw (the chip or the resized photo); where a field leaves the
image the outside is mid-grey (the network saw padding there). Each patch is drawn in a square cell
of ``cell`` pixels (small fields enlarged with nearest-neighbour, so a 3x3 field stays 3x3 blocks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facestyle.images import save_image

from .activations import Item, UnitTop

LABEL_W = 64  # the unit's number, left of its row
CAPTION_H = 14  # the activation value, under each patch
TITLE_H = 20
GAP = 4


def cut_patch(view: np.ndarray, box: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The pixels of ``view`` (H, W, 3) inside ``box`` ((y0, y1), (x0, x1)); outside the image: grey."""
    (y0, y1), (x0, x1) = ((int(np.floor(a)), int(np.ceil(b))) for a, b in box[-2:])
    out = np.full((y1 - y0, x1 - x0, 3), 128, np.uint8)
    h, w = view.shape[:2]
    sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = view[sy0:sy1, sx0:sx1]
    return out


def cell_size(field_px: float, smallest: int = 48, largest: int = 112) -> int:
    """The drawn size of a patch: its field size, clamped (deeper layers draw larger)."""
    return int(min(max(round(field_px), smallest), largest))


def grid_size(units: int, cell: int, per_row: int = 9) -> tuple[int, int]:
    """(width, height) of the grid image for ``units`` rows."""
    width = LABEL_W + per_row * (cell + GAP) + GAP
    height = TITLE_H + units * (cell + CAPTION_H + GAP) + GAP
    return width, height


def draw_grid(tops: list[UnitTop], items: list[Item], title: str, cell: int, per_row: int = 9) -> Image.Image:
    width, height = grid_size(len(tops), cell, per_row)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((GAP, 4), title, fill=(0, 0, 0), font=font)
    for row, top in enumerate(tops):
        y = TITLE_H + row * (cell + CAPTION_H + GAP)
        draw.text((GAP, y + cell // 2 - 6), f"unit {top.unit}", fill=(0, 0, 0), font=font)
        for col, patch in enumerate(top.patches[:per_row]):
            x = LABEL_W + GAP + col * (cell + GAP)
            pixels = cut_patch(items[patch.item].view, patch.box)
            resample = Image.NEAREST if pixels.shape[0] < cell else Image.BILINEAR
            canvas.paste(Image.fromarray(pixels).resize((cell, cell), resample), (x, y))
            draw.text((x + 2, y + cell + 1), f"{patch.value:.3g}", fill=(0, 0, 0), font=font)
    return canvas


def save_grid(image: Image.Image, path: str | Path) -> Path:
    """Written atomically; the format from the suffix (.png, .jpg)."""
    save_image(np.asarray(image), path)
    return Path(path)
