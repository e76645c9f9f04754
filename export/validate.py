"""Validation of an exported artifact against its PyTorch source, on real inputs.

The comparator (after Polygraphy's) reports, for every output, the worst element and the
tolerance that would have passed; validation raises one ParityError listing every failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facestyle.backends.onnxruntime import OnnxRuntimeBackend
from facestyle.errors import ParityError

from .spec import ModelSpec


@dataclass(frozen=True)
class OutputComparison:
    name: str
    max_abs_diff: float
    worst_index: tuple[int, ...]
    expected_value: float
    actual_value: float
    atol: float
    rtol: float
    required_atol: float  # the smallest atol (with this rtol) under which this output passes

    @property
    def passed(self) -> bool:
        return self.required_atol <= self.atol

    def describe(self) -> str:
        return (
            f"{self.name}: max abs diff {self.max_abs_diff:.3g} at {list(self.worst_index)} "
            f"(expected {self.expected_value:.6g}, got {self.actual_value:.6g}); "
            f"tolerance atol={self.atol:g} rtol={self.rtol:g}, would pass with atol={self.required_atol:.3g}"
        )


def compare_outputs(expected: dict, actual: dict, atol: float, rtol: float) -> list[OutputComparison]:
    results = []
    for name, ref in expected.items():
        ref = np.asarray(ref, np.float64)
        if name not in actual:
            raise ParityError(f"output {name!r} is missing from the artifact's outputs {sorted(actual)}")
        got = np.asarray(actual[name], np.float64)
        if got.shape != ref.shape:
            raise ParityError(f"output {name!r}: shape {list(got.shape)}, reference {list(ref.shape)}")
        diff = np.abs(got - ref)
        excess = diff - rtol * np.abs(ref)
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
        results.append(
            OutputComparison(
                name=name,
                max_abs_diff=float(diff.max(initial=0.0)),
                worst_index=tuple(int(i) for i in worst),
                expected_value=float(ref[worst]) if diff.size else 0.0,
                actual_value=float(got[worst]) if diff.size else 0.0,
                atol=atol,
                rtol=rtol,
                required_atol=float(max(excess.max(initial=0.0), 0.0)),
            )
        )
    return results


@dataclass(frozen=True)
class ParityReport:
    batches: list[int]
    outputs: dict[str, dict]  # name -> worst comparison across batches, as a dict

    def to_json(self) -> dict:
        return {"batches": self.batches, "outputs": self.outputs}


def validate_onnx(onnx_path: str | Path, module, spec: ModelSpec, feeds: list[dict[str, np.ndarray]]) -> ParityReport:
    """Run every feed through onnxruntime and through ``module``; raise ParityError if any output is off."""
    import torch

    worst: dict[str, OutputComparison] = {}
    with OnnxRuntimeBackend(onnx_path) as backend, torch.no_grad():
        for feed in feeds:
            actual = backend.infer(feed)
            ref = module(*[torch.from_numpy(feed[t.name]) for t in spec.inputs])
            refs = ref if isinstance(ref, (tuple, list)) else (ref,)
            expected = {t.name: r.numpy() for t, r in zip(spec.outputs, refs)}
            for cmp in compare_outputs(expected, actual, spec.atol, spec.rtol):
                if cmp.name not in worst or cmp.max_abs_diff > worst[cmp.name].max_abs_diff:
                    worst[cmp.name] = cmp
    failures = [c for c in worst.values() if not c.passed]
    if failures:
        raise ParityError(
            f"{onnx_path}: {len(failures)} output(s) differ from PyTorch: " + "; ".join(c.describe() for c in failures),
            failures,
        )
    batches = [int(next(iter(f.values())).shape[0]) for f in feeds]
    return ParityReport(batches, {name: asdict(c) for name, c in worst.items()})
