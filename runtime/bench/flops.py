"""The arithmetic a model call does, and the machine's float32 matrix-multiply rate: the roofline a bench row
is read against (achieved GFLOP/s = FLOPs per call / p50).

FLOPs are 2 x multiply-adds of every Conv, Gemm and MatMul, with shapes from ONNX shape inference at the
case's input shape (``onnx`` is needed to read the graph: the ``export`` extra; without it rows have no
GFLOP/s). Quantised (Q/DQ) graphs count the same convolutions.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np


def sgemm_gflops(n: int = 1024, repeats: int = 5) -> float:
    """numpy's float32 n x n x n matrix product, best of ``repeats``, in GFLOP/s."""
    a, b = np.random.default_rng(0).random((2, n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


@lru_cache(maxsize=64)
def network_flops(onnx_path: str | Path, input_shape: tuple[int, ...]) -> float | None:
    """FLOPs of one call of the model on an input of ``input_shape`` (its first input); None without onnx
    or where shape inference cannot follow the graph (the style nets' computed reflection padding)."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(str(onnx_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, input_shape):
        dim.Clear()
        dim.dim_value = int(value)
    inferred = shape_inference.infer_shapes(model).graph
    shapes = {t.name: list(t.dims) for t in inferred.initializer}
    for info in (*inferred.value_info, *inferred.output, *inferred.input):
        shapes[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]
    total = float(sum(_node_flops(node, shapes) for node in inferred.node))
    return total or None  # 0: shapes the inference could not follow (e.g. computed padding)


def _node_flops(node, shapes: dict[str, list[int]]) -> float:
    if node.op_type == "Conv":
        out, weight = shapes.get(node.output[0]), shapes.get(node.input[1])
        if not out or not weight or 0 in out:
            return 0.0
        return 2.0 * np.prod(out, dtype=np.float64) * np.prod(weight[1:], dtype=np.float64)
    if node.op_type in ("Gemm", "MatMul"):
        a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not a or not out or 0 in out:
            return 0.0
        inner = a[-1] if not (node.op_type == "Gemm" and _attribute(node, "transA")) else a[-2]
        return 2.0 * np.prod(out, dtype=np.float64) * inner
    return 0.0


def _attribute(node, name: str) -> int:
    return next((a.i for a in node.attribute if a.name == name), 0)
