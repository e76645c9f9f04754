"""One benchmark run: every case of a config measured in turn, skips gathered, the machine described."""

from __future__ import annotations

from collections.abc import Callable

from .cases import iter_cases
from .context import BenchContext
from .flops import sgemm_gflops
from .harness import BenchConfig, BenchResult, Skipped, describe_row, measure
from .machine import environment, load_average


def run_benchmark(config: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measures every case of ``config``; ``progress`` gets one line per case as it finishes."""
    say = progress or (lambda line: None)
    rows, skipped = [], []
    load_before = load_average()
    gemm = sgemm_gflops()  # the roofline the rows' achieved GFLOP/s are read against, in the same run
    say(f"numpy float32 1024^3 matrix product: {gemm:.1f} GFLOP/s")
    with BenchContext(config) as ctx:
        for item in iter_cases(ctx):
            if isinstance(item, Skipped):
                skipped.append(item)
                say(f"skipped {item.task} {item.model} {item.backend} {item.precision}: {item.reason}")
                continue
            row = measure(item, config.warmup, config.repeats)
            rows.append(row)
            say(f"{describe_row(row)}  p50 {row['p50_ms']:10.2f} ms  {row['throughput']:9.1f} items/s")
        env = environment(config, ctx.photo_path, ctx.photo.shape, load_before)
    env["sgemm_gflops"] = round(gemm, 1)
    return BenchResult(rows, skipped, env)
