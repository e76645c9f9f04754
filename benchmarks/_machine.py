"""What every benchmark shares: the machine it ran on, and the one timing loop (``facestyle.timing``)."""

from __future__ import annotations

from facestyle.bench import cpu_model  # noqa: F401 (re-exported: one CPU description for scripts and `facestyle bench`)
from facestyle.timing import time_calls


def timed(fn, repeats: int, warmup: int = 1) -> tuple[list[float], object]:
    """(milliseconds of each of ``repeats`` calls after ``warmup`` untimed ones, the last result)."""
    seconds, result = time_calls(fn, repeats, warmup)
    return [s * 1000 for s in seconds], result
