"""What each precision and each backend kind can do: one table each, read by backend selection,
the precision variants, the benchmarks and the CLI's choices.

To add a precision or a backend kind: add a row here, then its own module (a converter in
``facestyle.export.precision``, a backend in ``facestyle.backends``); nothing else lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadInputError


@dataclass(frozen=True)
class Precision:
    name: str
    derived: bool  # converted from the fp32 ONNX by `facestyle build --precision`
    calibrated: bool  # needs real inputs (a calibration reader) to convert
    tensorrt_arithmetic: bool  # symmetric Q/DQ, TensorRT's form: run unfused on onnxruntime's CPU kernels
    cpu_fast: bool  # the form that is fast in onnxruntime on a CPU
    summary: str


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("fp32", derived=False, calibrated=False, tensorrt_arithmetic=False, cpu_fast=True,
              summary="the validated export"),
    Precision("fp16", derived=True, calibrated=False, tensorrt_arithmetic=False, cpu_fast=False,
              summary="float16 weights and activations; norms, reductions and I/O kept float32"),
    Precision("int8", derived=True, calibrated=True, tensorrt_arithmetic=False, cpu_fast=True,
              summary="Q/DQ, uint8 asymmetric activations, int8 per-channel weights: fast CPU kernels"),
    Precision("int8-trt", derived=True, calibrated=True, tensorrt_arithmetic=True, cpu_fast=False,
              summary="Q/DQ, int8 symmetric activations and weights: the form TensorRT consumes"),
)}
PRECISION_NAMES = tuple(PRECISIONS)


def precision_named(name: str) -> Precision:
    if name not in PRECISIONS:
        raise BadInputError(f"precision {name!r}: expected one of {', '.join(PRECISIONS)}")
    return PRECISIONS[name]


@dataclass(frozen=True)
class BackendKind:
    name: str
    gpu: bool
    auto_rank: int | None  # order in `--backend auto` (lowest first); None: only when asked for
    ort_provider: str | None  # the onnxruntime execution provider, for the onnxruntime kinds
    runtime: bool = True  # False: a benchmark reference that needs the export extra (torch)
    summary: str = ""


BACKEND_KINDS: dict[str, BackendKind] = {b.name: b for b in (
    BackendKind("tensorrt", gpu=True, auto_rank=0, ort_provider=None, summary="TensorRT native, from a built engine"),
    BackendKind("ort-trt", gpu=True, auto_rank=None, ort_provider="TensorrtExecutionProvider",
                summary="onnxruntime's TensorRT execution provider"),
    BackendKind("ort-cuda", gpu=True, auto_rank=1, ort_provider="CUDAExecutionProvider",
                summary="onnxruntime's CUDA execution provider"),
    BackendKind("ort-cpu", gpu=False, auto_rank=2, ort_provider="CPUExecutionProvider", summary="onnxruntime on the CPU"),
    BackendKind("torch-cpu", gpu=False, auto_rank=None, ort_provider=None, runtime=False,
                summary="PyTorch eager on the CPU (benchmarks only)"),
    BackendKind("torch-cuda", gpu=True, auto_rank=None, ort_provider=None, runtime=False,
                summary="PyTorch eager on a CUDA GPU (benchmarks only)"),
)}
RUNTIME_BACKENDS = tuple(name for name, b in BACKEND_KINDS.items() if b.runtime)
BACKEND_CHOICES = ("auto", *RUNTIME_BACKENDS)  # what `--backend` accepts
AUTO_ORDER = tuple(b.name for b in sorted((b for b in BACKEND_KINDS.values() if b.auto_rank is not None),
                                          key=lambda b: b.auto_rank))
BENCH_BACKENDS = tuple(BACKEND_KINDS)  # `facestyle bench --backends`: the runtime's and the torch references
