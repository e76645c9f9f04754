"""The detector's tiled pyramid, fast: each level resized separably (rows, then columns) from a cached plan.

dlib resizes every level with a 2-D bilinear blend ``((tlf*tl + trf*tr) + blf*bl) + brf*br`` per output
pixel (``detector.resize_bilinear_planes`` emulates it operation for operation). Here the same sample
positions (dlib's float32 SIMD columns and double tail, its double rows) are blended as two 1-D passes
in float32: first the two source rows of every output row, then the two columns of every output column.
That is about 4x less arithmetic and gathers whole rows, so the pyramid costs a fraction of the
emulation; the values differ only by float32 rounding (~1e-6 of a pixel), which moves scores by ~1e-5
and leaves every box identical to dlib's (``tests/runtime/test_detector.py`` runs on both pyramids).

A plan (every level's rows, columns and weights) depends only on the image size, so a camera's frames
reuse one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .sampling import row_positions, simd_columns, tail_columns


@dataclass(frozen=True)
class LevelPlan:
    source: tuple[int, int, int, int]  # [left, top, right, bottom] of the level it is resized from
    target: tuple[int, int, int, int]  # and of itself
    top: np.ndarray  # (out_rows,) source row above each output row
    bottom: np.ndarray
    row_weight: np.ndarray  # (out_rows, 1) float32 weight of the bottom row
    left: np.ndarray  # (out_cols,) source column left of each output column
    right: np.ndarray
    column_weight: np.ndarray  # (out_cols,) float32 weight of the right column


def _columns(in_cols: int, out_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dlib's column positions: its SIMD blocks (float32, right = left + 1) then its scalar tail (clamped)."""
    done, left, frac = simd_columns(in_cols, out_cols)
    t_left, t_right, t_frac = tail_columns(in_cols, out_cols, done)
    lefts = np.concatenate([left, t_left])
    rights = np.concatenate([left + 1, t_right])
    return lefts, rights, np.concatenate([frac, t_frac.astype(np.float32)]).astype(np.float32)


@lru_cache(maxsize=16)
def pyramid_plan(rects_key: tuple[tuple[int, int, int, int], ...]) -> tuple[LevelPlan, ...]:
    """The resize plan of every level after the first, for the level rectangles of one image size."""
    plans = []
    for src, dst in zip(rects_key[:-1], rects_key[1:]):
        in_rows, in_cols = src[3] - src[1] + 1, src[2] - src[0] + 1
        out_rows, out_cols = dst[3] - dst[1] + 1, dst[2] - dst[0] + 1
        top, bottom, frac = row_positions(in_rows, out_rows)
        left, right, column_weight = _columns(in_cols, out_cols)
        plans.append(LevelPlan(src, dst, top, bottom, frac.astype(np.float32)[:, None], left, right, column_weight))
    return tuple(plans)


def resize_levels(tensor: np.ndarray, rects: np.ndarray, buffers: dict | None = None) -> None:
    """Fills levels 1.. of the (1, 3, NR, NC) tensor in place from level 0, each from the one before.

    ``buffers`` (the caller's per-thread dict) keeps the scratch rows between calls: fresh ~100 MB of
    temporaries per 640 px pyramid meant fresh pages from the kernel each time, which doubled its cost.
    """
    planes = tensor[0]
    rects_key = tuple(map(tuple, rects.tolist()))
    plans = pyramid_plan(rects_key)
    scratch = _scratch(rects_key, plans, buffers)
    for plan in plans:
        l0, t0, r0, b0 = plan.source
        l1, t1, r1, b1 = plan.target
        out_rows, in_cols, out_cols = len(plan.top), r0 - l0 + 1, len(plan.left)
        upper, rows = (b[:out_rows * in_cols].reshape(out_rows, in_cols) for b in scratch[:2])
        left, right = (b[:out_rows * out_cols].reshape(out_rows, out_cols) for b in scratch[2:])
        for channel in planes:  # one 2-D plane at a time: numpy's take is ~2x faster on 2-D than on 3-D
            source = channel[t0:b0 + 1, l0:r0 + 1]
            np.take(source, plan.top, axis=0, out=upper, mode="clip")  # indices are in range: no checks
            np.take(source, plan.bottom, axis=0, out=rows, mode="clip")
            rows -= upper
            rows *= plan.row_weight
            rows += upper  # upper + (lower - upper) * w
            np.take(rows, plan.left, axis=1, out=left, mode="clip")
            np.take(rows, plan.right, axis=1, out=right, mode="clip")
            right -= left
            right *= plan.column_weight
            np.add(left, right, out=channel[t1:b1 + 1, l1:r1 + 1])


def _scratch(rects_key: tuple, plans: tuple[LevelPlan, ...], buffers: dict | None) -> tuple[np.ndarray, ...]:
    """Four flat float32 buffers, big enough for every level's rows (two) and columns (two)."""
    key = ("pyramid-scratch", rects_key)
    if buffers is not None and key in buffers:
        return buffers[key]
    wide = max((len(p.top) * (p.source[2] - p.source[0] + 1) for p in plans), default=0)
    narrow = max((len(p.top) * len(p.left) for p in plans), default=0)
    scratch = tuple(np.empty(size, np.float32) for size in (wide, wide, narrow, narrow))
    if buffers is not None:
        buffers[key] = scratch
    return scratch
