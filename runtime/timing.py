"""The one timing loop: `facestyle bench`, the precision measurements and benchmarks/ all use it."""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import BadInputError


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[list[float], object]:
    """(seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, the last result)."""
    if warmup < 0 or repeats < 1:
        raise BadInputError(f"warmup {warmup} / repeats {repeats}: expected warmup >= 0 and repeats >= 1")
    result = None
    for _ in range(warmup):
        result = fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return samples, result
