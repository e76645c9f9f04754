"""Image-quality measures of stylised images (numpy only, no torch).

:func:`grid_ratio` detects the periodic grid ("checkerboard") pattern that upsampling decoders of
feed-forward style networks leave behind.
"""

from __future__ import annotations

import numpy as np

PERIODS = (2, 4, 8)


def _phase_means(diffs: np.ndarray, period: int) -> np.ndarray:
    """Mean of ``diffs`` (a 1-D profile along one axis) grouped by index mod ``period``."""
    n = len(diffs) - len(diffs) % period  # whole periods only, so every phase has as many samples
    return diffs[:n].reshape(-1, period).mean(axis=0)


def grid_ratio(image: np.ndarray, periods: tuple[int, ...] = PERIODS) -> float:
    """How strongly the image's neighbour differences depend on the pixel phase (1.0: not at all).

    For an image ``x`` (H x W or H x W x C, any dtype, taken as float), the horizontal neighbour
    differences ``|x[:, j+1] - x[:, j]|`` are averaged over rows and channels into one value per column
    gap ``j``; for each period ``p`` in ``periods`` (default 2, 4, 8) these are averaged by the phase
    ``j mod p`` (whole periods only), and the ratio largest / smallest of the ``p`` phase means is taken.
    The same is done for the vertical differences ``|x[i+1] - x[i]|`` by row phase. The grid ratio is the
    largest of those ratios over the periods and both directions.

    A pattern of period 2, 4 or 8 (what nearest or bilinear x2 upsampling stages and strided convs leave)
    makes some phases' differences systematically larger, so the ratio grows; natural photos measure about
    1.03-1.23 (JPEG's 8x8 blocks account for most of that). A flat image (every phase mean 0) gives 1.0;
    one phase of zero differences next to non-zero ones gives ``inf``.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"expected an H x W or H x W x C image, got shape {x.shape}")
    profiles = (np.abs(np.diff(x, axis=1)).mean(axis=(0, 2)),  # one value per column gap
                np.abs(np.diff(x, axis=0)).mean(axis=(1, 2)))  # one value per row gap
    worst = 1.0
    for profile in profiles:
        for p in periods:
            if len(profile) < p:
                continue
            means = _phase_means(profile, p)
            low, high = means.min(), means.max()
            if high == 0:
                continue
            worst = max(worst, float("inf") if low == 0 else float(high / low))
    return worst
