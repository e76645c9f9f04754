"""Precision variants of a built fp32 ONNX model: fp16, and int8 with explicit Q/DQ nodes.

TensorRT 10/11 builds strongly typed networks, so reduced precision is written into the ONNX graph
before any engine is built (docs/field-notes.md):

- ``fp16_from_onnx``: the graph in float16, normalisations and reductions kept in float32, inputs
  and outputs float32 so callers feed and read exactly what they did before;
- ``int8_from_onnx``: onnxruntime's ``quantize_static`` in QDQ format, calibrated on real inputs from
  a :class:`CalibrationReader`. Two flavours, because a CPU and a TensorRT deployment want different
  graphs: ``int8`` (uint8 asymmetric activations, int8 per-channel weights: onnxruntime's fast CPU
  kernels) and ``int8-trt`` (int8 symmetric activations and weights: the form TensorRT consumes, and
  slower than fp32 in onnxruntime on a CPU).

``build_variants`` turns ``engines/<model>/fp32.onnx`` into ``engines/<model>/<precision>.onnx`` plus
a manifest holding the calibration and the figures measured against fp32 (``facestyle.export.measure``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from facestyle.errors import BadInputError, ManifestError, MissingDependencyError, ModelFormatError
from facestyle.manifest import atomic_write_bytes, file_sha256, manifest_path, read_manifest, up_to_date, write_manifest

PRECISIONS = ("fp32", "fp16", "int8", "int8-trt")
INT8_FLAVOURS = ("int8", "int8-trt")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
RECIPE_VERSION = 1  # bump when a conversion changes what it writes: rebuilds every variant

# Kept in float32 by the fp16 conversion: statistics over many values lose too much in float16
# (sums overflow past 65504, means and norms lose their low bits).
KEEP_FP32_OPS = (
    "InstanceNormalization", "LayerNormalization", "GroupNormalization", "BatchNormalization",
    "LpNormalization", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp",
    "Softmax", "LogSoftmax", "Pow", "Sqrt", "Reciprocal",
)

# Nodes kept in float by default, per (model kind, flavour), as measured by
# benchmarks/precision_accuracy.py with ``layer_sensitivity``. "@first" / "@last" name the first / last
# weighted layer (Conv, Gemm, MatMul) of the quantisation-ready graph; other entries are node names.
# Why the first convolution for the CPU flavour: on x86 CPUs without VNNI (AVX2 only, like this
# project's machines) onnxruntime's u8s8 kernels add pairs of uint8 x int8 products in int16 with
# saturation; on raw normalised pixels that moved the astronaut's embedding by L2 0.21 instead of
# 0.04 (the same graph simulated in float). Keeping that one layer in float brings it to 0.037.
DEFAULT_EXCLUDES: dict[tuple[str, str], tuple[str, ...]] = {
    ("face-embed", "int8"): ("@first",),
    # The detector's score map decides boxes near 0 and picks the pyramid level by the best score:
    # quantising the last (score) convolution moved or lost the astronaut's box.
    ("face-detect", "int8"): ("@first", "@last"),
    ("face-detect", "int8-trt"): ("@last",),
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- metadata and writing ----------------------------------------------------------------------
def model_kind(model) -> str:
    """``face-embed``, ``face-detect`` or ``style``: from ``facestyle.kind`` or the contract's model name."""
    metadata = {p.key: p.value for p in model.metadata_props}
    raw = metadata.get("facestyle.kind") or metadata.get("facestyle.model")
    if raw is None:
        raise ModelFormatError("metadata lacks facestyle.kind and facestyle.model: not a facestyle model")
    kind = json.loads(raw)
    return "style" if kind.startswith("style") else kind


def _with_metadata(model, source_metadata: list[tuple[str, str]], precision: str):
    """``model`` carrying the source's ``metadata_props`` (the runtime contract) and its precision."""
    del model.metadata_props[:]
    for key, value in source_metadata:
        if key != "facestyle.precision":
            model.metadata_props.add(key=key, value=value)
    model.metadata_props.add(key="facestyle.precision", value=json.dumps(precision))
    return model


def _save_atomically(model, dst: Path) -> Path:
    """Check, then write all of ``model`` to ``dst`` or nothing (temp file, then rename)."""
    import onnx

    onnx.checker.check_model(model)
    atomic_write_bytes(dst, model.SerializeToString())
    return Path(dst)


def _load(src: Path):
    import onnx

    if not Path(src).is_file():
        raise BadInputError(f"{src}: no such ONNX model (expected the fp32 artifact that `facestyle build` writes)")
    try:
        return onnx.load(str(src))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for a damaged file
        raise ModelFormatError(f"not a readable ONNX model ({exc})", src) from None


# -- fp16 --------------------------------------------------------------------------------------
def fp16_from_onnx(src: str | Path, dst: str | Path, keep_fp32_ops: tuple[str, ...] = KEEP_FP32_OPS) -> Path:
    """``src`` converted to float16, ``keep_fp32_ops`` and the model's inputs and outputs in float32."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise MissingDependencyError("fp16 conversion needs onnxconverter-common: pip install 'facestyle[export]'") from None

    model = _load(Path(src))
    metadata = [(p.key, p.value) for p in model.metadata_props]
    blocked = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    with warnings.catch_warnings():
        # Weights under 1e-7 are flushed to 1e-7 (float16's subnormal range): one warning per weight,
        # hundreds of them; their effect is what the measured cosine drift shows.
        warnings.filterwarnings("ignore", message=r"the float32 number .* will be truncated", category=UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    _restore_float_outputs(converted, {o.name: o.type.tensor_type.elem_type for o in _load(Path(src)).graph.output})
    return _save_atomically(_with_metadata(converted, metadata, "fp16"), Path(dst))


def _restore_float_outputs(model, source_types: dict[str, int]) -> None:
    """onnxconverter-common 1.16 leaves an output float16 when the op producing it is blocked (e.g. a
    final Softmax): its cast back to float16 becomes the output. Outputs keep their source types."""
    from onnx import helper

    producers = {out: node for node in model.graph.node for out in node.output}
    for output in model.graph.output:
        wanted = source_types.get(output.name)
        if wanted is None or output.type.tensor_type.elem_type == wanted:
            continue
        producer = producers.get(output.name)
        if producer is not None and producer.op_type == "Cast":
            for attribute in producer.attribute:  # the cast into float16 now casts into the source type
                if attribute.name == "to":
                    attribute.i = wanted
        else:
            inner = output.name + "_fp16"
            for node in model.graph.node:
                node.output[:] = [inner if o == output.name else o for o in node.output]
                node.input[:] = [inner if i == output.name else i for i in node.input]
            model.graph.node.append(helper.make_node("Cast", [inner], [output.name], to=wanted, name=inner + "_to_output"))
        output.type.tensor_type.elem_type = wanted
        stale = [v for v in model.graph.value_info if v.name == output.name]
        for v in stale:
            model.graph.value_info.remove(v)


# -- calibration readers -------------------------------------------------------------------------
class CalibrationReader:
    """Real input batches for int8 calibration, like onnxruntime's ``CalibrationDataReader``:
    ``get_next()`` returns a feed dict or None when done, ``rewind()`` starts again.
    ``source`` says where the inputs came from (it goes into the manifest)."""

    source: str = "unspecified"

    def get_next(self) -> dict[str, np.ndarray] | None:
        raise NotImplementedError

    def rewind(self) -> None:
        raise NotImplementedError

    @property
    def count(self) -> int:
        """Inputs (images or chips) over all batches."""
        raise NotImplementedError

    def batches(self) -> list[dict[str, np.ndarray]]:
        """Every batch once, from the start (rewinds before and after)."""
        self.rewind()
        out = []
        while (feed := self.get_next()) is not None:
            out.append(feed)
        self.rewind()
        return out


class FeedListReader(CalibrationReader):
    """Feeds prepared up front: one ``{input_name: array}`` per batch."""

    def __init__(self, feeds: list[dict[str, np.ndarray]], source: str):
        self._feeds, self.source, self._next = list(feeds), source, 0

    def get_next(self):
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0

    @property
    def count(self) -> int:
        return sum(len(next(iter(f.values()))) for f in self._feeds)


class FaceChipReader(FeedListReader):
    """Aligned uint8 chips, preprocessed by the runtime's own ``FaceEmbedder.preprocess`` for ``model``."""

    def __init__(self, chips: np.ndarray, model: str | Path, source: str, batch_size: int = 16):
        from facestyle.face.embedder import FaceEmbedder

        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.dtype != np.uint8 or len(chips) == 0:
            raise BadInputError(f"calibration chips: expected uint8 (N>0, H, W, 3), got {chips.dtype}{list(chips.shape)}")
        embedder = FaceEmbedder.from_onnx(model)
        name = embedder.contract.input_name
        feeds = [{name: embedder.preprocess(chips[i : i + batch_size])} for i in range(0, len(chips), batch_size)]
        embedder.close()
        super().__init__(feeds, source)


class PhotoReader(FeedListReader):
    """Photos turned into the detector's tiled pyramid tensor, as ``FaceDetector.detect`` feeds the model."""

    def __init__(self, images: list[np.ndarray], model: str | Path, source: str):
        from facestyle.backends.onnxruntime import OnnxRuntimeBackend
        from facestyle.contract import DetectorContract
        from facestyle.face.detector import build_pyramid_tensor

        backend = OnnxRuntimeBackend(model, ("CPUExecutionProvider",)).activate()
        contract = DetectorContract.from_metadata(backend.metadata, str(model))
        backend.deactivate()
        feeds = [{contract.input_name: build_pyramid_tensor(image, contract)[0]} for image in images]
        super().__init__(feeds, source)


class StylePhotoReader(FeedListReader):
    """RGB photos as float32 NCHW, the style networks' ``image`` input (0..255 unless the contract's
    ``input_range`` says otherwise), one photo per batch."""

    def __init__(self, images: list[np.ndarray], source: str, input_name: str = "image", input_range=(0.0, 255.0)):
        low, high = (np.float32(v) for v in input_range)
        scale = (high - low) / np.float32(255)
        feeds = [{input_name: np.ascontiguousarray((np.asarray(i, np.float32) * scale + low).transpose(2, 0, 1)[None])}
                 for i in images]
        super().__init__(feeds, source)


# -- where calibration inputs come from --------------------------------------------------------------
def default_data_dir() -> Path:
    """``$FACESTYLE_DATA``, else ``../shared/data`` beside the repository (may not exist)."""
    return Path(os.environ.get("FACESTYLE_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def lfw_dir(data_dir: Path | None) -> Path | None:
    root = (data_dir or default_data_dir()) / "lfw-view1"
    return root if (root / "pairsDevTrain.txt").is_file() else None


def _spread(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items`` (deterministic, covers the whole alphabet of LFW)."""
    if count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def face_chip_reader(engines_dir: Path, model: Path, count: int = 256, data_dir: Path | None = None,
                     batch_size: int = 16) -> FaceChipReader:
    """Chips of LFW View 1 DevTrain photos (never DevTest, the evaluation set), made by the project's
    own detector, landmarks and alignment; skimage's photos where the shared data is absent."""
    from .measure import lfw_chips, pipeline_analyzer

    root = lfw_dir(data_dir)
    if root is None:
        chips, source = _skimage_chips(engines_dir, count)
    else:
        devtrain = lfw_chips(pipeline_analyzer(engines_dir), root, root / "pairsDevTrain.txt")
        detected = np.flatnonzero(devtrain.found)
        chips = devtrain.chips[_spread(list(detected), count)]
        source = f"LFW View 1 DevTrain ({root}): {len(chips)} chips by facestyle's detector+landmarks+alignment"
    return FaceChipReader(chips, model, source, batch_size)


def _skimage_chips(engines_dir: Path, count: int) -> tuple[np.ndarray, str]:
    """Aligned chips of the faces in skimage's photos (the astronaut), topped up with photo crops."""
    from facestyle.face.analyzer import FaceAnalyzer

    from .sample_inputs import natural_chips, skimage_data_dir

    analyzer = FaceAnalyzer.from_engines(engines_dir)
    from facestyle.images import load_image

    faces = analyzer.chips(image := load_image(skimage_data_dir() / "astronaut.png"), analyzer.detector.detect(image).boxes)[1]
    crops = natural_chips(max(count - len(faces), 1))
    source = f"scikit-image data (no shared LFW): {len(faces)} aligned face chip(s) from astronaut.png + {len(crops)} photo crops"
    return np.concatenate([faces, crops])[:count], source


def photo_reader(model: Path, count: int = 24, data_dir: Path | None = None) -> PhotoReader:
    """LFW View 1 DevTrain photos for the detector; skimage's photos where the shared data is absent."""
    from facestyle.face import lfw
    from facestyle.images import load_image

    from .sample_inputs import natural_images

    root = lfw_dir(data_dir)
    if root is None:
        images = natural_images([(240, 320), (333, 517), (300, 300), (250, 250)] * max(1, count // 4))[:count]
        source = f"scikit-image data photos (no shared LFW): {len(images)} images"
    else:
        pairs = lfw.read_pairs(root / "pairsDevTrain.txt", root)
        files = _spread(sorted({p.a for p in pairs} | {p.b for p in pairs}), count)
        images = [load_image(f) for f in files]
        source = f"LFW View 1 DevTrain ({root}): {len(images)} photos, 250x250"
    return PhotoReader(images, model, source)


def style_reader(count: int = 8, size: int = 256, data_dir: Path | None = None, folder: str = "bsds500",
                 model: str | Path | None = None) -> StylePhotoReader:
    """Content photos (shared ``content/<folder>`` when present, else skimage's) at ``size`` x ``size``."""
    from PIL import Image

    from facestyle.images import load_image

    from .sample_inputs import natural_images

    photos = (data_dir or default_data_dir()) / "content" / folder
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if photos.is_dir() else []
    if files:
        picked = _spread(files, count)
        images = [np.asarray(Image.fromarray(load_image(f)).resize((size, size), Image.BILINEAR)) for f in picked]
        source = f"content photos ({photos}): {len(images)} at {size}x{size}"
    else:
        images = natural_images([(size, size)] * count)
        source = f"scikit-image data photos (no {photos}): {len(images)} at {size}x{size}"
    return StylePhotoReader(images, source, *_style_input(model))


def _style_input(model: str | Path | None) -> tuple[str, tuple[float, float]]:
    """(input name, input range) from a style model's contract metadata; ("image", 0..255) without one."""
    if model is None:
        return "image", (0.0, 255.0)
    metadata = {p.key: p.value for p in _load(Path(model)).metadata_props}
    name = json.loads(metadata.get("facestyle.input_name", '"image"'))
    return name, tuple(json.loads(metadata.get("facestyle.input_range", "[0, 255]")))


# -- int8 --------------------------------------------------------------------------------------
def _quantisation_ready(src: Path, dst: Path) -> Path:
    """onnxruntime's recommended pre-processing: shape inference and graph optimisation (fusing the
    batch-norm Mul/Add into the convolutions, so they are quantised as one)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    return dst


class _Reader:
    """Adapter: onnxruntime calls ``get_next`` only; the project's reader stays as it is."""

    def __init__(self, reader: CalibrationReader):
        self.reader = reader

    def get_next(self):
        return self.reader.get_next()


def _check_reader(reader: CalibrationReader) -> None:
    if not callable(getattr(reader, "get_next", None)) or not callable(getattr(reader, "rewind", None)):
        raise BadInputError(f"calibration reader: expected get_next() and rewind(), got {type(reader).__name__}")
    reader.rewind()
    first = reader.get_next()
    reader.rewind()
    if first is None:
        raise BadInputError(f"calibration reader {type(reader).__name__} ({getattr(reader, 'source', '?')}): yielded no batches; int8 calibration needs real inputs")


def int8_from_onnx(
    src: str | Path,
    dst: str | Path,
    reader: CalibrationReader,
    flavour: str = "int8",
    method: str = "minmax",
    exclude_nodes: tuple[str, ...] | list[str] = (),
) -> Path:
    """``src`` quantised to int8 QDQ, calibrated on ``reader``'s batches.

    ``flavour``: ``int8`` (uint8 asymmetric activations, int8 symmetric per-channel weights) or
    ``int8-trt`` (int8 symmetric activations and weights, TensorRT's form). ``exclude_nodes`` (names
    in the quantisation-ready graph, see :func:`quantisable_nodes`) stay in float32.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if flavour not in INT8_FLAVOURS:
        raise BadInputError(f"int8 flavour: expected one of {', '.join(INT8_FLAVOURS)}, got {flavour!r}")
    if method not in CALIBRATION_METHODS:
        raise BadInputError(f"calibration method: expected one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    _check_reader(reader)
    source = _load(Path(src))
    metadata = [(p.key, p.value) for p in source.metadata_props]
    symmetric = flavour == "int8-trt"
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory(prefix="facestyle-int8-") as tmp:
        ready = _quantisation_ready(Path(src), Path(tmp) / "ready.onnx")
        exclude_nodes = resolve_exclusions(ready, exclude_nodes)
        unknown = sorted(set(exclude_nodes) - set(quantisable_nodes(ready)))
        if unknown:
            raise BadInputError(f"exclude_nodes: {', '.join(unknown)} not in the quantisation-ready graph of {src}")
        reader.rewind()
        quantize_static(
            str(ready), str(Path(tmp) / "q.onnx"), _Reader(reader),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude_nodes),
            calibrate_method=calibrate,
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
        )
        reader.rewind()
        import onnx

        quantised = onnx.load(str(Path(tmp) / "q.onnx"))
    return _save_atomically(_with_metadata(quantised, metadata, flavour), Path(dst))


_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def quantisable_nodes(model_path: str | Path, op_types: tuple[str, ...] | None = None) -> list[str]:
    """Node names, in graph order, of a model (optionally only ``op_types``)."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    return [n.name for n in graph.node if op_types is None or n.op_type in op_types]


def resolve_exclusions(ready: Path, exclude_nodes) -> list[str]:
    """Node names for ``exclude_nodes``, "@first" / "@last" resolved in the quantisation-ready graph."""
    weighted = quantisable_nodes(ready, _WEIGHTED_OPS)
    symbols = {"@first": weighted[:1], "@last": weighted[-1:]}
    return list(dict.fromkeys(n for name in exclude_nodes for n in symbols.get(name, [name])))


def edge_nodes(src: str | Path) -> list[str]:
    """The first and last weighted layers (Conv/Gemm/MatMul) of ``src``'s quantisation-ready graph:
    the usual suspects for quantisation drift (raw pixels in, the embedding out)."""
    with tempfile.TemporaryDirectory(prefix="facestyle-int8-") as tmp:
        names = quantisable_nodes(_quantisation_ready(Path(src), Path(tmp) / "ready.onnx"), _WEIGHTED_OPS)
    return list(dict.fromkeys(names[:1] + names[-2:]))


def layer_sensitivity(
    src: str | Path,
    reader: CalibrationReader,
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
    from .measure import output_drift

    candidates = edge_nodes(src) if candidates is None else candidates
    trials = [[]] + [[c] for c in candidates] + ([list(candidates)] if len(candidates) > 1 else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="facestyle-sens-") as tmp:
        for i, excluded in enumerate(trials):
            variant = int8_from_onnx(src, Path(tmp) / f"{i}.onnx", reader, flavour, method, excluded)
            rows.append({"excluded": excluded, "drift": output_drift(Path(src), variant, feeds, simulate=flavour == "int8-trt")})
    return rows


def choose_exclusions(rows: list[dict], min_gain: float = 0.15) -> list[str]:
    """Single-node exclusions that each cut the drift of the fully quantised graph by at least
    ``min_gain`` (relative): keeping a layer in float costs speed, so only when it clearly pays."""
    baseline = rows[0]["drift"]
    return [r["excluded"][0] for r in rows[1:] if len(r["excluded"]) == 1 and r["drift"] <= baseline * (1 - min_gain)]


# -- build_variants ----------------------------------------------------------------------------
@dataclass
class VariantPlan:
    model: str
    kind: str
    fp32: Path
    fp32_manifest: dict
    precision: str
    method: str
    exclude_nodes: tuple[str, ...]
    calibration_count: int
    data_dir: Path


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    import facestyle

    out = {"facestyle": facestyle.__version__}
    for package in ("onnx", "onnxruntime", "onnxconverter-common"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = "absent"
    return out


def _fingerprint(plan: VariantPlan, reader: CalibrationReader | None) -> str:
    """Everything the variant depends on: any change rebuilds it."""
    data = "caller's reader: " + reader.source if reader is not None else f"default data; LFW present: {lfw_dir(plan.data_dir) is not None}"
    key = [RECIPE_VERSION, plan.model, plan.precision, plan.fp32_manifest["artifact_sha256"], plan.method,
           list(plan.exclude_nodes), plan.calibration_count, data, _versions()]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def _default_reader(plan: VariantPlan, engines_dir: Path) -> CalibrationReader:
    if plan.kind == "face-embed":
        return face_chip_reader(engines_dir, plan.fp32, plan.calibration_count, plan.data_dir)
    if plan.kind == "face-detect":
        return photo_reader(plan.fp32, min(plan.calibration_count, 24), plan.data_dir)
    if plan.kind == "style":
        return style_reader(min(plan.calibration_count, 8), data_dir=plan.data_dir, model=plan.fp32)
    raise ModelFormatError(f"no calibration reader for model kind {plan.kind!r}", plan.fp32)


def _convert(plan: VariantPlan, artifact: Path, reader: CalibrationReader | None, engines_dir: Path) -> dict:
    """Write the variant; returns what the manifest records about the conversion."""
    if plan.precision == "fp16":
        fp16_from_onnx(plan.fp32, artifact)
        return {"conversion": {"kind": "float16 (onnxconverter-common)", "keep_fp32_ops": list(KEEP_FP32_OPS), "io_types": "float32"}}
    reader = reader or _default_reader(plan, engines_dir)
    int8_from_onnx(plan.fp32, artifact, reader, plan.precision, plan.method, plan.exclude_nodes)
    symmetric = plan.precision == "int8-trt"
    with tempfile.TemporaryDirectory(prefix="facestyle-int8-") as tmp:
        excluded = resolve_exclusions(_quantisation_ready(plan.fp32, Path(tmp) / "ready.onnx"), plan.exclude_nodes)
    return {"calibration": {
        "source": reader.source, "method": plan.method, "count": reader.count,
        "format": "QDQ", "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
        "weights": "int8 symmetric per-channel", "excluded_nodes": excluded,
    }}


def build_variants(
    engines_dir: str | Path,
    model_name: str,
    precisions: list[str] | tuple[str, ...],
    reader: CalibrationReader | None = None,
    *,
    method: str = "minmax",
    exclude_nodes: tuple[str, ...] | None = None,
    calibration_count: int = 256,
    data_dir: str | Path | None = None,
    measure: bool = True,
    force: bool = False,
) -> list[dict]:
    """``engines/<model>/<precision>.onnx`` and its manifest for each of ``precisions``, from the built
    ``engines/<model>/fp32.onnx``. A variant whose fingerprint (fp32 sha256, recipe, calibration,
    versions) matches its manifest is left alone. Returns one row per precision: model, precision,
    status ("built", "up to date" or "source" for fp32), artifact, size_bytes, seconds, measured."""
    engines_dir = Path(engines_dir)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise BadInputError(f"precision: expected some of {', '.join(PRECISIONS)}, got {', '.join(map(repr, unknown))}")
    fp32 = engines_dir / model_name / "fp32.onnx"
    if not fp32.is_file():
        raise ManifestError(f"{fp32}: no fp32 artifact to derive {', '.join(precisions)} from; run `facestyle build` first")
    fp32_manifest = read_manifest(manifest_path(fp32))
    if file_sha256(fp32) != fp32_manifest["artifact_sha256"]:
        raise ManifestError(f"{fp32}: sha256 differs from its manifest; run `facestyle build --force`")
    import onnx

    kind = model_kind(onnx.load(str(fp32), load_external_data=False))
    rows = []
    for precision in precisions:
        plan = VariantPlan(model_name, kind, fp32, fp32_manifest, precision, method,
                           tuple(DEFAULT_EXCLUDES.get((kind, precision), ()) if exclude_nodes is None else exclude_nodes),
                           calibration_count, Path(data_dir) if data_dir else default_data_dir())
        rows.append(_build_one(plan, engines_dir, reader, measure, force))
    return rows


def _build_one(plan: VariantPlan, engines_dir: Path, reader: CalibrationReader | None, measure: bool, force: bool) -> dict:
    started = time.perf_counter()
    artifact = plan.fp32.with_name(f"{plan.precision}.onnx")
    row = {"model": plan.model, "precision": plan.precision, "artifact": str(artifact)}
    if plan.precision == "fp32":
        return {**row, "status": "source", "size_bytes": plan.fp32.stat().st_size, "seconds": 0.0, "measured": {}}
    fingerprint = _fingerprint(plan, reader)
    if not force and (existing := up_to_date(artifact, fingerprint)):
        return {**row, "status": "up to date", "size_bytes": artifact.stat().st_size,
                "seconds": round(time.perf_counter() - started, 1), "measured": existing.get("measured", {})}
    _log(f"[{plan.model}] {plan.precision}: converting {plan.fp32}")
    try:
        recorded = _convert(plan, artifact, reader, engines_dir)
        measured, threshold = ({}, {})
        if measure:
            from .measure import measure_variant

            _log(f"[{plan.model}] {plan.precision}: measuring against fp32")
            measured, threshold = measure_variant(plan.kind, engines_dir, plan.fp32, artifact, plan.fp32_manifest, plan.data_dir, plan.precision)
    except BaseException:
        artifact.unlink(missing_ok=True)  # a variant without its manifest and figures is not kept
        raise
    _write_variant_manifest(plan, artifact, fingerprint, recorded, measured, threshold)
    return {**row, "status": "built", "size_bytes": artifact.stat().st_size,
            "seconds": round(time.perf_counter() - started, 1), "measured": measured}


def _write_variant_manifest(plan: VariantPlan, artifact: Path, fingerprint: str, recorded: dict, measured: dict, threshold: dict) -> None:
    source = plan.fp32_manifest
    copied = {k: source[k] for k in ("opset", "inputs", "outputs", "contract") if k in source}
    if not threshold and "threshold" in source:  # not re-derived: the fp32 threshold, said so
        threshold = {"threshold": source["threshold"],
                     "threshold_source": f"fp32's, not re-derived for {plan.precision}: {source.get('threshold_source', 'unspecified')}"}
    write_manifest(manifest_path(artifact), {
        "model": plan.model,
        "precision": plan.precision,
        "artifact": artifact.name,
        "artifact_sha256": file_sha256(artifact),
        "fingerprint": fingerprint,
        "source": {"file": plan.fp32.name, "sha256": source["artifact_sha256"], "model_source": source.get("source")},
        **copied,
        **threshold,
        **recorded,
        "measured": measured,
        "versions": _versions(),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
