"""``facestyle export-triton``: a Triton Inference Server model repository from what ``facestyle build`` wrote.

Driven by the kinds table (``facestyle.kinds``) and the manifests, never by a kind's name:

* every built ONNX model becomes ``REPO/<model>/config.pbtxt`` + ``REPO/<model>/1/<artifact>``:
  ``model.onnx`` (platform ``onnxruntime``: ``onnxruntime_onnx``), ``model.plan`` (platform ``tensorrt``:
  ``tensorrt_plan``, from the engine ``facestyle build --engine trt`` wrote beside the ONNX), or ``model.onnx`` +
  ``model.py`` (platform ``python``: a Python-backend model running onnxruntime, for Triton builds without
  the onnxruntime backend, such as the one PyTriton bundles);
* ``max_batch_size`` is the kind's largest batch (``axis_ranges["batch"]``), dims come from the ONNX with
  every named (dynamic) axis as -1; ``dynamic_batching`` where a kind batches; ``instance_group``;
  the preprocessing contract, threshold and artifact sha256 as ``parameters``;
* where the detector, the landmarks and the embedder are all there, the pipeline model ``face-pipeline``
  (Python backend, BLS): encoded image bytes in, boxes / scores / landmarks / embeddings out. The facestyle
  runtime modules it imports (pure Python, torch-free: ``facestyle.export.runtime_bundle``) are copied into
  ``face-pipeline/1/facestyle/``, so Triton's Python needs only numpy and Pillow, no ``pip install facestyle``.

The repository is written into a temporary folder beside ``--out`` and renamed into place only when
complete: ``REPO`` holds the old repository or the whole new one, never part of one. Only a folder that
export-triton wrote (it holds a marker file) or an empty one is ever replaced; never a file, another
folder, or the engines folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from facestyle.errors import BadInputError, ManifestError
from facestyle.export.runtime_bundle import copy_runtime_modules
from facestyle.kinds import KINDS, ModelKind, kind_of_model
from facestyle.loading import engines_root, find_built
from facestyle.manifest import artifact_of, read_manifest

PIPELINE_MODEL = "face-pipeline"
PIPELINE_PARTS = ("face-detect", "landmarks-5", "face-embed")  # the models the pipeline calls or holds
ENGINE_SUFFIX = ".trt.engine"  # as facestyle.backends.trt.engine_fit names them (not imported: it is GPU-side)
_ORT_TO_TRITON = {
    "tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(double)": "TYPE_FP64",
    "tensor(int64)": "TYPE_INT64", "tensor(int32)": "TYPE_INT32", "tensor(uint8)": "TYPE_UINT8",
    "tensor(int8)": "TYPE_INT8", "tensor(bool)": "TYPE_BOOL",
}
QUEUE_DELAY_US = 2000  # how long the dynamic batcher waits for more requests (short next to one inference)


@dataclass(frozen=True)
class Platform:
    """How one ``--platform`` serves a built model: its config lines and the files of its version folder."""

    name: str
    triton_platform: str | None  # config ``platform:`` (onnxruntime_onnx / tensorrt_plan), or None with a backend
    backend: str | None  # config ``backend:`` ("python")
    model_file: str  # the artifact's name in REPO/<model>/1/
    default_model_filename: bool  # the config names model_file (else the Python model reads a parameter)
    instance_kind: str  # the default instance group
    from_engine: bool  # the artifact is the TensorRT engine built beside the ONNX, not the ONNX
    python_model: str | None = None  # the model.py shipped in facestyle.triton.models, for the Python backend


PLATFORMS: dict[str, Platform] = {p.name: p for p in (
    Platform("onnxruntime", "onnxruntime_onnx", None, "model.onnx", True, "KIND_GPU", from_engine=False),
    Platform("tensorrt", "tensorrt_plan", None, "model.plan", True, "KIND_GPU", from_engine=True),
    Platform("python", None, "python", "model.onnx", False, "KIND_CPU", from_engine=False, python_model="onnx_model.py"),
)}


def platform_named(name: str) -> Platform:
    if name not in PLATFORMS:
        raise BadInputError(f"--platform {name!r}: expected one of {', '.join(PLATFORMS)}")
    return PLATFORMS[name]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton's TYPE_*
    dims: tuple[int, ...]  # without the batch axis where max_batch_size > 0; -1 = dynamic
    optional: bool = False


@dataclass
class ModelSpec:
    """Everything one ``config.pbtxt`` says."""

    name: str
    platform: str | None  # onnxruntime_onnx / tensorrt_plan, or None with a backend
    backend: str | None  # "python"
    max_batch_size: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    instance_kind: str  # KIND_GPU / KIND_CPU
    instance_count: int = 1
    dynamic_batching: bool = False
    preferred_batch_sizes: tuple[int, ...] = ()
    parameters: dict[str, str] = field(default_factory=dict)
    default_model_filename: str | None = None


def _dims_of(shape, kind: ModelKind, batched: bool) -> tuple[int, ...]:
    """onnxruntime shape (ints, or names for dynamic axes) -> Triton dims (-1 dynamic), batch axis dropped if batched."""
    def dim(d):
        if isinstance(d, int) and d > 0:
            return d
        low, _, high = kind.axis_ranges.get(str(d), (0, 0, -1))
        return high if low == high else -1  # an axis the kinds table fixes (the detector's batch of 1)

    dims = [dim(d) for d in shape]
    return tuple(dims[1:] if batched else dims)


def onnx_io(onnx_path: Path, kind: ModelKind) -> tuple[list[TensorSpec], list[TensorSpec], dict[str, str]]:
    """The ONNX's inputs and outputs as Triton tensors, and its ``metadata_props`` (read with onnxruntime)."""
    import onnxruntime as ort

    try:
        inference = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ManifestError(f"{onnx_path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
    batched = kind.max_batch > 1

    def tensors(values):
        out = []
        for v in values:
            if v.type not in _ORT_TO_TRITON:
                raise ManifestError(f"{onnx_path}: tensor {v.name!r} of type {v.type} has no Triton type")
            out.append(TensorSpec(v.name, _ORT_TO_TRITON[v.type], _dims_of(v.shape, kind, batched)))
        return out

    metadata = dict(inference.get_modelmeta().custom_metadata_map)
    return tensors(inference.get_inputs()), tensors(inference.get_outputs()), metadata


def _parameters(manifest: dict, metadata: dict[str, str]) -> dict[str, str]:
    """The contract (as the ONNX metadata records it, ``facestyle.*`` keys) and the manifest's figures."""
    params = {k: v for k, v in sorted(metadata.items()) if k.startswith("facestyle.")}
    for key in ("kind", "model", "precision", "artifact_sha256", "threshold", "threshold_source"):
        if manifest.get(key) is not None:
            value = manifest[key]
            params[f"manifest.{key}"] = value if isinstance(value, str) else json.dumps(value)
    return params


def _preferred_sizes(kind: ModelKind) -> tuple[int, ...]:
    low, opt, high = kind.axis_ranges.get("batch", (1, 1, 1))
    return tuple(sorted({opt, high}))


def model_spec(model: str, kind: ModelKind, platform: str, inputs, outputs, params: dict[str, str],
               instance_kind: str | None = None, instances: int = 1) -> ModelSpec:
    """The config of one model of ``kind`` on ``platform`` (no files read: testable on its own)."""
    serving = platform_named(platform)
    batched = kind.max_batch > 1
    spec = ModelSpec(
        name=model,
        platform=serving.triton_platform,
        backend=serving.backend,
        max_batch_size=kind.max_batch if batched else 0,
        inputs=list(inputs), outputs=list(outputs),
        instance_kind=instance_kind or serving.instance_kind,
        instance_count=instances,
        dynamic_batching=batched,
        preferred_batch_sizes=_preferred_sizes(kind) if batched else (),
        parameters=dict(params),
        default_model_filename=serving.model_file if serving.default_model_filename else None,
    )
    if not serving.default_model_filename:
        spec.parameters["onnx_file"] = serving.model_file
    return spec


def pipeline_spec(embed_batch: int, instances: int = 1, upsample: int = 0) -> ModelSpec:
    """The BLS pipeline model: one encoded photo per request (any format Pillow reads)."""
    return ModelSpec(
        name=PIPELINE_MODEL, platform=None, backend="python", max_batch_size=0,
        inputs=[TensorSpec("IMAGE", "TYPE_STRING", (1,)), TensorSpec("UPSAMPLE", "TYPE_INT32", (1,), optional=True)],
        outputs=[TensorSpec("BOXES", "TYPE_INT64", (-1, 4)), TensorSpec("SCORES", "TYPE_FP32", (-1,)),
                 TensorSpec("LANDMARKS", "TYPE_INT64", (-1, 5, 2)), TensorSpec("EMBEDDINGS", "TYPE_FP32", (-1, -1))],
        instance_kind="KIND_CPU", instance_count=instances,
        parameters={"detector_model": "face-detect", "embedder_model": "face-embed", "landmarks_file": "landmarks.npz",
                    "contracts_file": "contracts.json", "embed_batch": str(embed_batch), "upsample": str(upsample)},
    )


def _q(text: str) -> str:
    return json.dumps(text)  # a protobuf text-format string literal (JSON escapes are a subset it reads)


def render_config(spec: ModelSpec) -> str:
    """``config.pbtxt`` text (Triton's ModelConfig in protobuf text format)."""
    lines = [f"name: {_q(spec.name)}"]
    if spec.platform:
        lines.append(f"platform: {_q(spec.platform)}")
    if spec.backend:
        lines.append(f"backend: {_q(spec.backend)}")
    lines.append(f"max_batch_size: {spec.max_batch_size}")
    if spec.default_model_filename:
        lines.append(f"default_model_filename: {_q(spec.default_model_filename)}")
    for section, tensors in (("input", spec.inputs), ("output", spec.outputs)):
        for t in tensors:
            extra = " optional: true" if t.optional else ""
            dims = ", ".join(map(str, t.dims))
            lines.append(f"{section} {{ name: {_q(t.name)} data_type: {t.data_type} dims: [ {dims} ]{extra} }}")
    lines.append(f"instance_group {{ count: {spec.instance_count} kind: {spec.instance_kind} }}")
    if spec.dynamic_batching:
        sizes = ", ".join(map(str, spec.preferred_batch_sizes))
        lines.append(f"dynamic_batching {{ preferred_batch_size: [ {sizes} ] max_queue_delay_microseconds: {QUEUE_DELAY_US} }}")
    for key, value in spec.parameters.items():
        lines.append(f"parameters {{ key: {_q(key)} value {{ string_value: {_q(value)} }} }}")
    return "\n".join(lines) + "\n"


def _python_model_source(name: str) -> Path:
    """A Python-backend model.py shipped in the runtime package (facestyle.triton.models)."""
    from facestyle.triton import models

    return Path(models.__file__).parent / name


@dataclass
class Exported:
    model: str
    platform: str
    files: list[str]
    precision: str = "-"
    note: str = ""


def _selected(engines: Path, models: list[str] | None) -> list[str]:
    """The models to export: those asked for, else every model folder of a known kind that has a manifest."""
    if models:
        for m in models:
            kind_of_model(m)
        return list(models)
    found = []
    for folder in sorted(p for p in engines.iterdir() if p.is_dir()) if engines.is_dir() else []:
        if any(k.owns(folder.name) for k in KINDS.values()) and any(folder.glob("*.manifest.json")):
            found.append(folder.name)
    if not found:
        raise ManifestError(f"{engines}: no built models (run `facestyle build` first)")
    return found


def _built(engines: Path, model: str, precision: str):
    """The manifest of ``model`` at ``precision``; a model without that variant (only the embedder has
    them all) gives its base precision, and a kind without variants its one manifest."""
    folder = engines / model
    if (folder / f"{precision}.manifest.json").exists():
        return find_built(engines, model, precision)
    kind = kind_of_model(model)
    manifests = sorted(folder.glob("*.manifest.json"))
    if not kind.precision_variants and len(manifests) == 1:
        return find_built(engines, model, manifests[0].name[: -len(".manifest.json")])
    if precision != kind.base_precision and (folder / f"{kind.base_precision}.manifest.json").exists():
        return find_built(engines, model, kind.base_precision)
    return find_built(engines, model, precision)  # raises, naming the manifest


def _export_model(stage: Path, engines: Path, model: str, kind: ModelKind, platform: str, precision: str,
                  instance_kind: str | None, instances: int) -> Exported:
    built = _built(engines, model, precision)
    inputs, outputs, metadata = onnx_io(built.artifact, kind)
    params = _parameters(built.manifest, metadata)
    spec = model_spec(model, kind, platform, inputs, outputs, params, instance_kind, instances)
    version = stage / model / "1"
    version.mkdir(parents=True)
    serving = PLATFORMS[platform]
    source = _engine_of(built, model) if serving.from_engine else built.artifact
    shutil.copyfile(source, version / serving.model_file)
    files = [serving.model_file]
    if serving.python_model:
        shutil.copyfile(_python_model_source(serving.python_model), version / "model.py")
        files.append("model.py")
    (stage / model / "config.pbtxt").write_text(render_config(spec))
    return Exported(model, platform, ["config.pbtxt"] + [f"1/{f}" for f in files], built.manifest["precision"])


def _engine_of(built, model: str) -> Path:
    """The TensorRT engine built beside the ONNX, checked against its own manifest."""
    engine = built.artifact.with_name(built.artifact.stem + ENGINE_SUFFIX)
    engine_manifest = engine.with_name(engine.name[: -len(".engine")] + ".manifest.json")
    if not engine.exists() or not engine_manifest.exists():
        raise ManifestError(f"{engine}: no TensorRT engine built for {model} {built.manifest['precision']} "
                            "(run `facestyle build --engine trt` on the serving GPU)")
    artifact_of(engine_manifest, read_manifest(engine_manifest))  # its sha256 checked
    return engine


def _export_pipeline(stage: Path, engines: Path, precision: str, instances: int) -> Exported:
    detector, landmarks, embedder = (_built(engines, m, precision) for m in PIPELINE_PARTS)
    contracts = {"face-detect": onnx_io(detector.artifact, kind_of_model("face-detect"))[2],
                 "face-embed": onnx_io(embedder.artifact, kind_of_model("face-embed"))[2],
                 "threshold": embedder.manifest.get("threshold")}
    version = stage / PIPELINE_MODEL / "1"
    version.mkdir(parents=True)
    shutil.copyfile(landmarks.artifact, version / "landmarks.npz")
    (version / "contracts.json").write_text(json.dumps(contracts, indent=1, sort_keys=True))
    source = _python_model_source("pipeline_model.py")
    shutil.copyfile(source, version / "model.py")
    copy_runtime_modules(source, version)  # 1/facestyle/...: Triton's Python needs numpy and Pillow, not facestyle
    spec = pipeline_spec(kind_of_model("face-embed").max_batch, instances)
    (stage / PIPELINE_MODEL / "config.pbtxt").write_text(render_config(spec))
    return Exported(PIPELINE_MODEL, "python", ["config.pbtxt", "1/model.py", "1/landmarks.npz", "1/contracts.json",
                                               "1/facestyle/"],
                    embedder.manifest["precision"], "BLS: face-detect -> landmarks -> align -> face-embed")


MARKER = ".facestyle-triton-repository"  # written into every repository: only such a folder is ever replaced


def check_out_folder(out: Path, engines: Path) -> None:
    """Refuse an ``out`` whose replacement would lose something: a file, a folder that export-triton did not
    write (it has no MARKER), the engines folder, a folder inside it, or one holding it."""
    engines = engines.resolve()
    if out == engines or out.is_relative_to(engines) or engines.is_relative_to(out):
        where = "is" if out == engines else "is inside" if out.is_relative_to(engines) else "holds"
        raise BadInputError(f"--out {out}: {where} the engines folder {engines}; write the repository elsewhere")
    here = Path.cwd().resolve()
    if here.is_relative_to(out):  # the swap would leave this shell in a deleted folder
        raise BadInputError(f"--out {out}: is the current folder or holds it; give a folder beside or below it")
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise BadInputError(f"--out {out}: exists and is not a folder; it would be replaced (choose another path)")
    entries = sorted(p.name for p in out.iterdir())
    if entries and not (out / MARKER).is_file():
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise BadInputError(f"--out {out}: a folder export-triton did not write ({len(entries)} entries: {shown}); "
                            "it would be replaced: choose a new or empty folder")


def export_repository(out: str | Path, engines_dir: str | Path | None = None, models: list[str] | None = None,
                      precision: str = "fp32", platform: str = "onnxruntime", instance_kind: str | None = None,
                      instances: int = 1, pipeline: bool = True) -> list[Exported]:
    """Write the repository to ``out`` atomically; returns what it holds.

    ``out`` may be new, empty, or a repository this function wrote before (it holds MARKER), which is
    replaced whole; anything else is refused (:func:`check_out_folder`) before any work."""
    platform_named(platform)
    if instances < 1:
        raise BadInputError(f"--instances {instances}: expected 1 or more")
    engines = engines_root(engines_dir)
    out = Path(out).resolve()  # "." has no name to stage beside; a relative path may hide the engines folder
    check_out_folder(out, engines)
    chosen = _selected(engines, models)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (stage / MARKER).write_text(json.dumps({"written_by": "facestyle export-triton"}) + "\n")
        done = []
        for model in chosen:
            kind = kind_of_model(model)
            if kind.artifact_suffix != ".onnx":
                done.append(Exported(model, "-", [], note="no ONNX: runs inside the pipeline model"))
                continue
            done.append(_export_model(stage, engines, model, kind, platform, precision, instance_kind, instances))
        if pipeline and all(p in chosen for p in PIPELINE_PARTS):
            done.append(_export_pipeline(stage, engines, precision, instances))
        if not any(d.precision == precision for d in done) and any(d.precision != "-" for d in done):
            raise ManifestError(f"{engines}: no model has a {precision} variant built "
                                f"(run `facestyle build --precision {precision}`)")
        os.chmod(stage, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out)
        return done
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
