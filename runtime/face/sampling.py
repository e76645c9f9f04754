"""Where dlib's bilinear ``resize_image`` samples its input: the row and column positions and weights
(``image_transforms/interpolation.h``), shared by the exact emulation (``detector``) and the separable
pyramid (``fast_pyramid``), so both sample where dlib does.
"""

from __future__ import annotations

import numpy as np


def row_positions(in_rows: int, out_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows: ``y += y_scale`` in double from ``-y_scale``; top = floor(y), bottom clamped, frac = y - top."""
    y_scale = (in_rows - 1) / max(out_rows - 1, 1)
    steps = np.full(out_rows + 1, y_scale)
    steps[0] = -y_scale
    y = np.add.accumulate(steps)[1:]  # sequential, like the C++ loop
    top = np.floor(y).astype(np.int64)
    return top, np.minimum(top + 1, in_rows - 1), y - top


def simd_columns(in_cols: int, out_cols: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The SIMD loop's columns: 4 float32 lanes from ``x = -4*x_scale``, each advanced by
    ``float(4*x_scale)`` per block, left = truncate, frac = x - left; the loop stops at the first block
    whose last right neighbour is outside the input. Returns (columns done, left, frac float32)."""
    x_scale = (in_cols - 1) / max(out_cols - 1, 1)
    x0 = -4 * x_scale
    starts = np.array([x0, x0 + x_scale, x0 + 2 * x_scale, x0 + 3 * x_scale], np.float32)
    blocks = out_cols // 4 + 2  # the loop always stops by then (the last lane passes in_cols - 1)
    lanes = np.empty((blocks + 1, 4), np.float32)
    lanes[0] = starts
    lanes[1:] = np.float32(4 * x_scale)
    x = np.add.accumulate(lanes, axis=0, dtype=np.float32)[1:]  # float32, sequential per lane
    left = x.astype(np.int32)  # _mm_cvttps_epi32: truncation
    stop = np.flatnonzero(left[:, 3] + 1 >= in_cols)
    done = int(stop[0]) * 4 if len(stop) else blocks * 4
    done = min(done, out_cols)
    x, left = x.reshape(-1)[:done], left.reshape(-1)[:done].astype(np.int64)
    return done, left, (x - left.astype(np.float32)).astype(np.float32)


def tail_columns(in_cols: int, out_cols: int, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scalar loop after the SIMD one: ``x = -x_scale + start*x_scale`` then ``x += x_scale`` in double."""
    x_scale = (in_cols - 1) / max(out_cols - 1, 1)
    steps = np.full(out_cols - start + 1, x_scale)
    steps[0] = -x_scale + start * x_scale
    x = np.add.accumulate(steps)[1:]
    left = np.floor(x).astype(np.int64)
    return left, np.minimum(left + 1, in_cols - 1), x - left
