"""The int8 variants: onnxruntime's ``quantize_static`` in QDQ format, calibrated on real inputs from
a :class:`~facestyle.export.precision.readers.CalibrationReader`.

The flavours are the calibrated rows of ``facestyle.capabilities.PRECISIONS``, because a CPU and a
TensorRT deployment want different graphs: ``int8`` (uint8 asymmetric activations, int8 per-channel
weights: onnxruntime's fast CPU kernels) and ``int8-trt`` (``tensorrt_arithmetic``: int8 symmetric
activations and weights, the form TensorRT consumes, and slower than fp32 in onnxruntime on a CPU).

The weights' range is a choice (:data:`WEIGHT_RANGES`): ``full`` (int8, -127..127) or ``reduced``
(7 bits, -64..64). On x86 CPUs without VNNI, onnxruntime's uint8 x int8 kernels add pairs of products
in int16 with saturation, which full-range weights overflow and reduced-range weights never can
(``facestyle.cpu`` gives the arithmetic); ``auto`` decides by the CPU the model is built on.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

from facestyle.capabilities import PRECISIONS
from facestyle.cpu import cpu_record, has_vnni
from facestyle.errors import BadInputError

from .artifacts import load_onnx, save_checked, source_metadata, with_metadata

INT8_FLAVOURS = tuple(name for name, p in PRECISIONS.items() if p.calibrated)
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # what "@first" / "@last" count
WEIGHT_RANGES = ("auto", "full", "reduced")
WEIGHT_LEVELS = {"full": "int8 symmetric per-channel, -127..127", "reduced": "7-bit symmetric per-channel, -64..64"}


def symmetric_activations(flavour: str) -> bool:
    """TensorRT's arithmetic wants symmetric (zero point 0) int8 activations."""
    return PRECISIONS[flavour].tensorrt_arithmetic


def weight_range_for(flavour: str, choice: str = "auto", flags: frozenset[str] | None = None) -> str:
    """``full`` or ``reduced``: ``choice`` itself, or for ``auto`` what is right on the CPU with
    ``flags`` (default: this one). TensorRT's form keeps full range (TensorRT accumulates in int32); the
    CPU form is reduced unless the CPU has VNNI, whose kernels cannot saturate."""
    if choice not in WEIGHT_RANGES:
        raise BadInputError(f"int8 weight range: expected one of {', '.join(WEIGHT_RANGES)}, got {choice!r}")
    if choice != "auto":
        return choice
    return "full" if symmetric_activations(flavour) or has_vnni(flags) else "reduced"


def quantisation_ready(src: Path, dst: Path) -> Path:
    """onnxruntime's recommended pre-processing: shape inference and graph optimisation (fusing the
    batch-norm Mul/Add into the convolutions, so they are quantised as one)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    return dst


class _DropAxisOutOfRange(logging.Filter):
    """onnxruntime's QDQ quantiser logs one root-logger warning per 1-D weight it cannot quantise per channel
    ("Axis 1 is out-of-range for weight ..."); it then quantises that weight per tensor, as intended here."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Axis ") and "is out-of-range for weight" in message)


@contextlib.contextmanager
def quiet_per_channel_fallback():
    """Around quantize_static: those warnings dropped; a NullHandler keeps ``logging.warning`` from calling
    basicConfig (which would leave a stderr handler on the root logger for good). Both undone afterwards."""
    root, drop, null = logging.getLogger(), _DropAxisOutOfRange(), logging.NullHandler()
    root.addFilter(drop)
    root.addHandler(null)
    try:
        yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(null)


class _OnnxRuntimeReader:
    """Adapter: onnxruntime calls ``get_next`` only; the project's reader stays as it is."""

    def __init__(self, reader):
        self.reader = reader

    def get_next(self):
        return self.reader.get_next()


def _check_reader(reader) -> None:
    if not callable(getattr(reader, "get_next", None)) or not callable(getattr(reader, "rewind", None)):
        raise BadInputError(f"calibration reader: expected get_next() and rewind(), got {type(reader).__name__}")
    reader.rewind()
    first = reader.get_next()
    reader.rewind()
    if first is None:
        raise BadInputError(f"calibration reader {type(reader).__name__} ({getattr(reader, 'source', '?')}): "
                            "yielded no batches; int8 calibration needs real inputs")


def _check_options(flavour: str, method: str) -> None:
    if flavour not in INT8_FLAVOURS:
        raise BadInputError(f"int8 flavour: expected one of {', '.join(INT8_FLAVOURS)}, got {flavour!r}")
    if method not in CALIBRATION_METHODS:
        raise BadInputError(f"calibration method: expected one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")


def quantise(src: Path, dst: Path, reader, flavour: str, method: str, exclude_nodes,
             weight_range: str = "auto") -> tuple[Path, list[str]]:
    """:func:`int8_from_onnx`, also returning the node names kept in float ("@first" / "@last" resolved)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    _check_options(flavour, method)
    reduce_range = weight_range_for(flavour, weight_range) == "reduced"
    _check_reader(reader)
    metadata = source_metadata(load_onnx(Path(src)))
    symmetric = symmetric_activations(flavour)
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory(prefix="facestyle-int8-") as tmp:
        ready = quantisation_ready(Path(src), Path(tmp) / "ready.onnx")
        excluded = resolve_exclusions(ready, exclude_nodes)
        unknown = sorted(set(excluded) - set(quantisable_nodes(ready)))
        if unknown:
            raise BadInputError(f"exclude_nodes: {', '.join(unknown)} not in the quantisation-ready graph of {src}")
        reader.rewind()
        with quiet_per_channel_fallback():
            quantize_static(
                str(ready), str(Path(tmp) / "q.onnx"), _OnnxRuntimeReader(reader),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                reduce_range=reduce_range,
                nodes_to_exclude=list(excluded),
                calibrate_method=calibrate,
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
            )
        reader.rewind()
        import onnx

        quantised = onnx.load(str(Path(tmp) / "q.onnx"))
    return save_checked(with_metadata(quantised, metadata, flavour), Path(dst)), excluded


def int8_from_onnx(
    src: str | Path,
    dst: str | Path,
    reader,
    flavour: str = "int8",
    method: str = "minmax",
    exclude_nodes: tuple[str, ...] | list[str] = (),
    weight_range: str = "auto",
) -> Path:
    """``src`` quantised to int8 QDQ, calibrated on ``reader``'s batches.

    ``flavour``: ``int8`` (uint8 asymmetric activations, int8 symmetric per-channel weights) or
    ``int8-trt`` (int8 symmetric activations and weights, TensorRT's form). ``exclude_nodes`` (names
    in the quantisation-ready graph, see :func:`quantisable_nodes`; "@first" / "@last" for the first /
    last weighted layer) stay in float32. ``weight_range``: one of :data:`WEIGHT_RANGES`, see
    :func:`weight_range_for`.
    """
    return quantise(Path(src), Path(dst), reader, flavour, method, exclude_nodes, weight_range)[0]


def calibration_record(reader, flavour: str, method: str, excluded: list[str], weight_range: str = "auto") -> dict:
    """What a variant's manifest says about its calibration, the weight range it was built with
    included, and the CPU that ``auto`` decided on."""
    resolved = weight_range_for(flavour, weight_range)
    return {
        "source": reader.source, "method": method, "count": reader.count,
        "format": "QDQ", "activations": "int8 symmetric" if symmetric_activations(flavour) else "uint8 asymmetric",
        "weights": WEIGHT_LEVELS[resolved], "weight_range": resolved, "weight_range_choice": weight_range,
        "built_on_cpu": cpu_record(), "excluded_nodes": excluded,
    }


def quantisable_nodes(model_path: str | Path, op_types: tuple[str, ...] | None = None) -> list[str]:
    """Node names, in graph order, of a model (optionally only ``op_types``)."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    return [n.name for n in graph.node if op_types is None or n.op_type in op_types]


def resolve_exclusions(ready: Path, exclude_nodes) -> list[str]:
    """Node names for ``exclude_nodes``, "@first" / "@last" resolved in the quantisation-ready graph:
    the first weighted layer, and the last one with every node after it (a head computed in several
    ops, like the detector's score convolution as taps and their sum, stays float as a whole)."""
    weighted = quantisable_nodes(ready, WEIGHTED_OPS)
    every = quantisable_nodes(ready)
    tail = every[every.index(weighted[-1]):] if weighted else []
    symbols = {"@first": weighted[:1], "@last": tail}
    return list(dict.fromkeys(n for name in exclude_nodes for n in symbols.get(name, [name])))


def edge_nodes(src: str | Path) -> list[str]:
    """The first and last weighted layers (Conv/Gemm/MatMul) of ``src``'s quantisation-ready graph:
    the usual suspects for quantisation drift (raw pixels in, the embedding out)."""
    with tempfile.TemporaryDirectory(prefix="facestyle-int8-") as tmp:
        names = quantisable_nodes(quantisation_ready(Path(src), Path(tmp) / "ready.onnx"), WEIGHTED_OPS)
    return list(dict.fromkeys(names[:1] + names[-2:]))
