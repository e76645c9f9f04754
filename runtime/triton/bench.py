"""Bench cases for a Triton server beside the in-process runtime, in one run (``facestyle bench --triton URL``).

Each case is timed by the one timing loop (``facestyle.timing.time_calls``) and gives a row with the
same keys for in-process and for Triton over HTTP and gRPC, so the rows sit side by side:

- ``embed`` at each batch: aligned chips -> embeddings (``FaceEmbedder.embed`` / ``TritonFaces.embed``);
- ``e2e-faces``: encoded photo bytes -> boxes, landmarks and embeddings (``FaceAnalyzer.faces`` /
  one call of the ``face-pipeline`` model per photo).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..timing import time_calls

EMBED_BATCHES = (1, 8, 32)


def _row(task: str, where: str, batch: int, seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))], 3)

    return {"task": task, "where": where, "batch": batch, "repeats": len(ms), "p50_ms": pct(50), "p90_ms": pct(90),
            "p99_ms": pct(99), "mean_ms": round(statistics.fmean(ms), 3),
            "items_per_s": round(batch / (statistics.median(ms) / 1000), 2)}


def triton_cases(urls: Mapping[str, str], engines_dir: str | Path | None, photo: str | Path,
                 batches: Sequence[int] = EMBED_BATCHES) -> tuple[list[tuple[str, str, int, Callable[[], object]]], list]:
    """(task, where, items per call, the call) for in-process and for each protocol, and the runtimes opened
    (the caller closes them)."""
    from ..face.analyzer import FaceAnalyzer
    from .client import TritonFaces

    local = FaceAnalyzer.from_engines(engines_dir)
    data = Path(photo).read_bytes()
    pixels = local._pixels(data)
    faces = local.detector.detect(pixels).boxes
    chip = local.chips(pixels, faces[:1])[1][0]
    runtimes = [("in-process", local)]
    for protocol, url in urls.items():  # {"http": "host:8000", "grpc": "host:8001"}
        runtimes.append((f"triton-{protocol}", TritonFaces(url, protocol=protocol)))
    cases = []
    for where, runtime in runtimes:
        for batch in batches:
            chips = np.repeat(chip[None], batch, axis=0)
            cases.append(("embed", where, batch, lambda r=runtime, c=chips: r.embedder.embed(c)))
        cases.append(("e2e-faces", where, 1, lambda r=runtime: r.faces(data)))
    return cases, [runtime for _, runtime in runtimes]


def run_triton_bench(urls: Mapping[str, str], engines_dir: str | Path | None, photo: str | Path, repeats: int = 20, warmup: int = 3,
                     batches: Sequence[int] = EMBED_BATCHES, progress: Callable[[str], None] | None = None,
                     rounds: int = 4) -> list[dict]:
    """Rows (p50/p90/p99 ms, items/s) of every case; the runtimes are closed at the end.

    The repeats are taken in ``rounds`` passes over all cases, so in-process and Triton see the same
    machine load (on a shared machine, load drifts within a run)."""
    cases, runtimes = triton_cases(urls, engines_dir, photo, batches)
    rounds = max(1, min(rounds, repeats))
    samples: list[list[float]] = [[] for _ in cases]
    try:
        for r in range(rounds):
            count = repeats // rounds + (1 if r < repeats % rounds else 0)
            for i, (_, _, _, call) in enumerate(cases):
                seconds, _ = time_calls(call, count, warmup if r == 0 else 0)
                samples[i] += seconds
        rows = [_row(task, where, batch, samples[i]) for i, (task, where, batch, _) in enumerate(cases)]
        if progress:
            for row in rows:
                progress(f"{row['task']:<10} {row['where']:<12} batch {row['batch']:>3}: p50 {row['p50_ms']} ms")
    finally:
        for runtime in runtimes:
            runtime.close()
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| task | where | batch | p50 ms | p90 ms | p99 ms | items/s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['where']} | {r['batch']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['items_per_s']} |"
              for r in rows]
    return "\n".join(lines) + "\n"


# -- the `facestyle bench --triton URL` hook (two calls from facestyle.cli.bench) ------------------------
def add_arguments(parser) -> None:
    """``--triton HOST:PORT`` (HTTP) and ``--triton-grpc HOST:PORT`` on the bench command's parser."""
    parser.add_argument("--triton", metavar="HOST:PORT", help="also time a Triton server serving `facestyle export-triton`'s "
                        "repository (its HTTP address), beside the in-process runtime, in the same run")
    parser.add_argument("--triton-grpc", metavar="HOST:PORT", help="its gRPC address too (default: HTTP only)")


def run_from_args(args, progress: Callable[[str], None] | None = None) -> int:
    """Run the Triton cases for the bench command's ``args`` and print them (JSON with ``--json``, else markdown)."""
    import json

    from ..bench.context import default_photo

    urls = {"http": args.triton.split("://")[-1]}
    if args.triton_grpc:
        urls["grpc"] = args.triton_grpc.split("://")[-1]
    rows = run_triton_bench(urls, args.engines, args.image or default_photo(), args.repeats, args.warmup, progress=progress)
    print(json.dumps(rows) if args.json else markdown(rows))
    return 0
