"""Overlapping, feathered tiles: a large image is stylised piece by piece in bounded memory.

Each tile is run on its own and the tiles are blended with weights that ramp linearly across the
overlaps, so neighbouring tiles fade into one another instead of meeting at an edge. Tiles also see
``overlap`` pixels of context beyond the part of them that dominates the blend.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import BadInputError


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length``, neighbours sharing >= ``overlap``.

    Starts are multiples of ``align`` when ``length`` and ``tile`` are: a strided network then samples
    every tile on the same grid as the whole image, so its texture stays in phase across tiles.
    """
    step = (tile - overlap) // align * align
    if overlap < 0 or step <= 0:
        raise BadInputError(f"tile {tile} / overlap {overlap}: expected 0 <= overlap < tile (aligned to {align})")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def feather(length: int, ramp_start: int, ramp_end: int) -> np.ndarray:
    """1-D blend weights: rising over the first ``ramp_start`` pixels, falling over the last ``ramp_end``."""
    weights = np.ones(length, np.float32)
    if ramp_start:
        weights[:ramp_start] = (np.arange(ramp_start, dtype=np.float32) + 0.5) / ramp_start
    if ramp_end:
        falling = (np.arange(ramp_end, 0, -1, dtype=np.float32) - 0.5) / ramp_end
        weights[length - ramp_end :] = np.minimum(weights[length - ramp_end :], falling)
    return weights


def _axis_weights(starts: list[int], tile: int, length: int) -> list[np.ndarray]:
    out = []
    for i, start in enumerate(starts):
        size = min(tile, length - start)
        before = starts[i - 1] + tile - start if i > 0 else 0  # pixels shared with the previous tile
        after = start + size - starts[i + 1] if i + 1 < len(starts) else 0
        out.append(feather(size, max(before, 0), max(after, 0)))
    return out


def run_tiled(run: Callable[[np.ndarray, tuple[int, int]], np.ndarray], image: np.ndarray, tile: int, overlap: int,
              align: int = 1, on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Calls ``run(piece, (top, left))`` ((h, w, 3) float32 -> (h, w, 3) float32) per tile and blends the results.
    ``on_tile(done, total)`` is told before the first tile (done 0) and after each one (a progress bar)."""
    height, width = image.shape[:2]
    rows, cols = tile_starts(height, tile, overlap, align), tile_starts(width, tile, overlap, align)
    tiles, done = len(rows) * len(cols), 0
    if on_tile:
        on_tile(done, tiles)
    row_weights, col_weights = _axis_weights(rows, tile, height), _axis_weights(cols, tile, width)
    total = np.zeros(image.shape, np.float32)
    weight_sum = np.zeros((height, width, 1), np.float32)
    for top, wy in zip(rows, row_weights):
        for left, wx in zip(cols, col_weights):
            piece = image[top : top + len(wy), left : left + len(wx)]
            result = run(piece, (top, left))
            if result.shape != piece.shape:
                raise BadInputError(f"tile at ({top}, {left}): the network returned {result.shape} for {piece.shape}")
            w = np.outer(wy, wx)[..., None]
            total[top : top + len(wy), left : left + len(wx)] += result * w
            weight_sum[top : top + len(wy), left : left + len(wx)] += w
            done += 1
            if on_tile:
                on_tile(done, tiles)
    return total / weight_sum
