"""What every benchmark shares: the machine it ran on, and one timing loop."""

from __future__ import annotations

import time

from facestyle.bench import cpu_model  # noqa: F401 (re-exported: one CPU description for scripts and `facestyle bench`)


def timed(fn, repeats: int, warmup: int = 1) -> tuple[list[float], object]:
    """(milliseconds of each of ``repeats`` calls after ``warmup`` untimed ones, the last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, result
