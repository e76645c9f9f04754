"""A run's report: the speed against the baseline, the markdown table and report, the skipped lines,
and the files ``--out`` writes (JSON, markdown, and the PNG charts of ``facestyle.plots``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..manifest import atomic_write_bytes
from ..plots import latency_png, throughput_png
from .harness import BASELINE, BOUNDARIES, BenchResult, Skipped


def baseline_speedups(rows: list[dict], baseline: tuple[str, str] = BASELINE) -> list[float | None]:
    """Per row, baseline p50 / row p50 (above 1: faster than the baseline), None without a baseline.

    The baseline of our own rows is the same model, batch and size on ``baseline`` (backend, precision);
    of a peer's row, our first such row of the same task, batch and size.
    """
    def is_baseline(r: dict) -> bool:
        return (r["backend"], r["precision"]) == baseline and not r.get("peer")

    out = []
    for row in rows:
        same = ("task", "batch", "size") if row.get("peer") else ("model", "batch", "size")
        base = next((r for r in rows if is_baseline(r) and all(r.get(k) == row.get(k) for k in same)), None)
        out.append(round(base["p50_ms"] / row["p50_ms"], 3) if base and row["p50_ms"] > 0 else None)
    return out


MARKDOWN_COLUMNS = ("task", "model", "backend", "precision", "batch", "size", "p50 ms", "p90 ms", "p99 ms",
                    "items/s", f"speed vs {BASELINE[0]} {BASELINE[1]}", "GFLOP/s (network FLOPs / p50)")


def _number(value: float) -> str:
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(MARKDOWN_COLUMNS) + " |", "|" + "|".join("---" for _ in MARKDOWN_COLUMNS) + "|"]
    for row, speed in zip(rows, baseline_speedups(rows), strict=True):
        cells = (row.get("task", ""), row["model"] + (" (peer)" if row.get("peer") else ""), row["backend"],
                 row["precision"], str(row["batch"]), str(row["size"]), _number(row["p50_ms"]), _number(row["p90_ms"]),
                 _number(row["p99_ms"]), _number(row["throughput"]), "-" if speed is None else f"{speed:.2f}x",
                 "-" if not row.get("achieved_gflops") else _number(row["achieved_gflops"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(result: BenchResult) -> str:
    env = result.environment
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    gpu, photo = env.get("gpu"), env.get("photo", {})
    lines = [
        f"# facestyle bench, {env.get('measured_at', '')}",
        "",
        f"Machine: {env.get('cpu')}, {env.get('cores')} cores ({env.get('usable_cores')} usable), "
        f"load {env.get('load_average_before')} -> {env.get('load_average_after')}; "
        + (f"GPU {gpu['name']} (driver CUDA {gpu['cuda_driver']}, TensorRT {gpu['tensorrt'] or 'absent'})" if gpu else "no GPU")
        + f". Python {env.get('python')}; {versions}."
        + (f" numpy float32 matrix product (1024^3): {env['sgemm_gflops']} GFLOP/s in this run; threads: "
           f"{env.get('threads', {}).get('onnxruntime')}." if env.get("sgemm_gflops") else ""),
        f"Photo: {Path(photo.get('file', '?')).name} ({photo.get('width')}x{photo.get('height')}); per case "
        f"{env.get('warmup')} untimed warm-up call(s), then {env.get('repeats')} timed.",
        "",
        markdown_table(result.rows),
        "",
        "Boundaries (the same for every backend and peer of a task):",
        "",
        *(f"- `{task}`: {text}" for task, text in BOUNDARIES.items()),
    ]
    if result.skipped:
        lines += ["", "Skipped here:", "", *(f"- {line}" for line in skipped_lines(result.skipped))]
    return "\n".join(lines) + "\n"


def skipped_lines(skipped: list[Skipped]) -> list[str]:
    """One line per (backend, reason), listing the models and precisions it kept from running."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for s in skipped:
        grouped.setdefault((s.backend, s.reason), []).append(f"{s.model} {s.precision}".strip())
    return [f"{backend}: {reason} ({', '.join(dict.fromkeys(what))})" for (backend, reason), what in grouped.items()]


def write_report(result: BenchResult, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.md``, ``<stem>-latency.png`` and (with embedding rows) ``<stem>-throughput.png``,
    each written atomically."""
    out_dir = Path(out_dir)
    files = {
        "json": (out_dir / f"{stem}.json", (json.dumps(result.to_json(), indent=2) + "\n").encode()),
        "markdown": (out_dir / f"{stem}.md", markdown_report(result).encode()),
        "latency_png": (out_dir / f"{stem}-latency.png", latency_png(result.rows)),
    }
    if any(r.get("task") == "embed" for r in result.rows):
        files["throughput_png"] = (out_dir / f"{stem}-throughput.png", throughput_png(result.rows))
    for path, data in files.values():
        atomic_write_bytes(path, data)
    return {kind: path for kind, (path, _) in files.items()}
