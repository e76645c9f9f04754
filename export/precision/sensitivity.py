"""Per-layer quantisation sensitivity: which layers to keep in float (the export kinds table's
``default_excludes`` were chosen with it, by benchmarks/precision_accuracy.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from facestyle.capabilities import precision_named

from .int8 import edge_nodes, int8_from_onnx
from .measure import output_drift


def layer_sensitivity(
    src: str | Path,
    reader,
    feeds: list[dict[str, np.ndarray]],
    flavour: str = "int8",
    method: str = "minmax",
    candidates: list[str] | None = None,
) -> list[dict]:
    """Drift (worst relative L2 of the output against fp32 on ``feeds``) with every layer quantised,
    then with each candidate kept in float, then with all candidates kept in float. Returns rows
    ``{"excluded": [...], "drift": float}``, the fully quantised one first. ``int8`` runs onnxruntime's
    fused CPU kernels (what a CPU deployment runs); ``int8-trt`` runs the Q/DQ graph unfused, i.e.
    simulated in float with exact integer products, as TensorRT computes it."""
    candidates = edge_nodes(src) if candidates is None else candidates
    trials = [[]] + [[c] for c in candidates] + ([list(candidates)] if len(candidates) > 1 else [])
    simulate = precision_named(flavour).tensorrt_arithmetic
    rows = []
    with tempfile.TemporaryDirectory(prefix="facestyle-sens-") as tmp:
        for i, excluded in enumerate(trials):
            variant = int8_from_onnx(src, Path(tmp) / f"{i}.onnx", reader, flavour, method, excluded)
            rows.append({"excluded": excluded, "drift": output_drift(Path(src), variant, feeds, simulate=simulate)})
    return rows
