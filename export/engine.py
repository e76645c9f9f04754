"""``EngineFromOnnx``: a validated ONNX -> a serialized TensorRT engine + its sidecar manifest.

Written against the documented TensorRT 10.x and 11.x Python API. Precision lives in the ONNX graph
(fp16 by converting the graph, int8 by explicit Q/DQ nodes) and the network is strongly typed: TensorRT
11 always is (its FP16/INT8 builder flags are gone), and TensorRT 10 is asked for it with the
STRONGLY_TYPED creation flag, so both build exactly the precision the graph was validated in.

The manifest (``<precision>.trt.manifest.json`` beside ``<precision>.trt.engine``) records what the
engine fits (TensorRT version, GPU, compute capability, driver, the ONNX's sha256) so that the
runtime can tell a stale engine from a good one (``facestyle.backends.trt.engine_differences``).
Default optimisation profiles come from the model kind's axis ranges (``facestyle.kinds``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from facestyle.backends.trt import (
    check_profiles,
    default_profiles,
    engine_path_for,
    gpu_info,
    import_tensorrt,
    tensorrt_major,
)
from facestyle.errors import BackendUnavailableError, ManifestError, ModelFormatError
from facestyle.kinds import ModelKind, kind_of_manifest
from facestyle.manifest import atomic_write_bytes, file_sha256, manifest_path, read_manifest, write_manifest

from .provenance import built_at, log, versions

DEFAULT_WORKSPACE_BYTES = 1 << 30
DEFAULT_CONCURRENT_CONTEXTS = 2  # threads that can run one engine at once (one profile copy each)


# -- what the ONNX says about itself ------------------------------------------------------------------
def onnx_description(onnx_path: Path) -> tuple[list[tuple[str, list[int | None]]], dict[str, str]]:
    """The graph's inputs as (name, shape with None for dynamic axes), and its ``metadata_props``."""
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises protobuf's DecodeError and others
        raise ModelFormatError(f"not a readable ONNX model ({exc})", onnx_path) from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = []
    for tensor in model.graph.input:
        if tensor.name in initializers:
            continue  # old exporters list weights as inputs too
        dims = tensor.type.tensor_type.shape.dim
        inputs.append((tensor.name, [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]))
    return inputs, {p.key: p.value for p in model.metadata_props}


def _onnx_manifest(onnx_path: Path) -> dict | None:
    try:
        return read_manifest(manifest_path(onnx_path))
    except ManifestError:
        return None  # an ONNX from elsewhere: its metadata_props still carry the contract


def _contract(metadata: dict[str, str]) -> dict:
    """``facestyle.<field>`` entries, decoded: the preprocessing contract as plain JSON."""
    contract = {}
    for key, value in metadata.items():
        if key.startswith("facestyle."):
            try:
                contract[key.removeprefix("facestyle.")] = json.loads(value)
            except json.JSONDecodeError:
                contract[key.removeprefix("facestyle.")] = value
    return contract


# -- the TensorRT build ------------------------------------------------------------------------------
def _network_flags(trt) -> int:
    """Strongly typed: in 11 it is the only mode (the flag is deprecated and ignored), in 10 we ask."""
    if tensorrt_major(trt) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _parse(trt, builder, logger, onnx_path: Path):
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from the file, so external data is found beside it
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFormatError(f"TensorRT's ONNX parser rejects it: {errors}", onnx_path)
    return network, parser  # the parser owns weights the network points at: keep it alive


def _config(trt, builder, profiles, workspace_bytes: int, concurrent_contexts: int, timing_cache: bytes, allow_tf32: bool):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if not allow_tf32 and hasattr(trt.BuilderFlag, "TF32"):
        # TensorRT rounds fp32 convolutions to TF32 by default (10-bit mantissas): not the fp32 the graph
        # was validated in. Off unless asked for.
        config.clear_flag(trt.BuilderFlag.TF32)
    # One copy of the profiles per concurrent execution context: TensorRT lets only one context at a
    # time use a profile of an engine with dynamic shapes.
    for _ in range(concurrent_contexts):
        for profile in profiles:
            optimization = builder.create_optimization_profile()
            for name, shapes in profile.items():
                optimization.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
            config.add_optimization_profile(optimization)
    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, False)  # False: a cache from another device/version is not used
    return config


def _load_timing_cache(path: Path | None) -> bytes:
    return path.read_bytes() if path is not None and path.is_file() else b""


def _save_timing_cache(config, path: Path | None) -> None:
    if path is not None:
        atomic_write_bytes(path, bytes(memoryview(config.get_timing_cache().serialize())))


def _serialize(trt, onnx_path: Path, profiles, workspace_bytes, concurrent_contexts, timing_cache_path, allow_tf32) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_path)
    timing_cache = _load_timing_cache(timing_cache_path)
    config = _config(trt, builder, profiles, workspace_bytes, concurrent_contexts, timing_cache, allow_tf32)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFormatError("TensorRT could not build an engine from it (see TensorRT's log above)", onnx_path)
    _save_timing_cache(config, timing_cache_path)
    return bytes(memoryview(serialized))


# -- the loader ---------------------------------------------------------------------------------------
def engine_from_onnx(
    onnx_path: str | Path,
    engine_path: str | Path | None = None,
    profiles: list[dict] | None = None,
    precision: str | None = None,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    timing_cache_path: str | Path | None = None,
    concurrent_contexts: int = DEFAULT_CONCURRENT_CONTEXTS,
    allow_tf32: bool = False,
    device_id: int = 0,
) -> Path:
    """Build a TensorRT engine from ``onnx_path`` and write it with its manifest; returns the engine's path.

    ``profiles``: a list of ``{input: {"min": [...], "opt": [...], "max": [...]}}``; by default one from
    the model kind's axis ranges (``facestyle.kinds``: embedding batch 1/8/64, detector and style
    height/width ranges), shapes from the ONNX.
    ``precision`` only labels the engine (default: the ONNX manifest's, else the file's stem): the
    graph's own types decide it. The timing cache at ``timing_cache_path`` is read if present and
    written back (atomically) after the build. ``concurrent_contexts`` copies of the profiles let that
    many threads run the engine at once; ``allow_tf32`` lets fp32 layers use TF32 (off: fp32 is fp32).
    """
    trt = import_tensorrt()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelFormatError("no such ONNX model; run `facestyle build` first", onnx_path)
    engine_path = Path(engine_path) if engine_path is not None else engine_path_for(onnx_path)
    gpu = gpu_info(device_id)
    if gpu is None:
        raise BackendUnavailableError(f"building a TensorRT engine needs an NVIDIA GPU; the CUDA driver shows no GPU {device_id}")
    inputs, metadata = onnx_description(onnx_path)
    onnx_manifest = _onnx_manifest(onnx_path)
    model = _model_name(metadata, onnx_manifest, onnx_path)
    profiles = profiles or default_profiles(_model_kind(onnx_manifest, model), inputs, str(onnx_path))
    check_profiles(profiles, inputs)
    precision = precision or (onnx_manifest or {}).get("precision") or onnx_path.stem
    timing_cache_path = Path(timing_cache_path) if timing_cache_path is not None else None

    started = time.perf_counter()
    log(f"[{model}] building TensorRT {trt.__version__} engine for {gpu.name} from {onnx_path}")
    engine_bytes = _serialize(trt, onnx_path, profiles, workspace_bytes, concurrent_contexts, timing_cache_path, allow_tf32)
    atomic_write_bytes(engine_path, engine_bytes)
    write_manifest(
        manifest_path(engine_path),
        {
            "model": model,
            "precision": precision,
            "artifact": engine_path.name,
            "artifact_sha256": file_sha256(engine_path),
            "format": "tensorrt-engine",
            "onnx": {"file": _relative(onnx_path, engine_path.parent), "sha256": file_sha256(onnx_path)},
            "tensorrt": {"version": str(trt.__version__), "strongly_typed": True},
            "allow_tf32": allow_tf32,
            "gpu": {"name": gpu.name, "compute_capability": gpu.compute_capability, "driver_version": gpu.driver_version,
                    "device_id": device_id},
            "profiles": profiles,
            "concurrent_contexts": concurrent_contexts,
            "workspace_bytes": int(workspace_bytes),
            "contract": _contract(metadata),
            "metadata_props": metadata,
            **_threshold(onnx_manifest),
            "build_seconds": round(time.perf_counter() - started, 1),
            "versions": {**versions(), "tensorrt": str(trt.__version__)},  # the module's own: wheels differ in name
            "built_at": built_at(),
        },
    )
    return engine_path


def _model_name(metadata: dict[str, str], onnx_manifest: dict | None, onnx_path: Path) -> str:
    if "facestyle.model" in metadata:
        return json.loads(metadata["facestyle.model"])
    if onnx_manifest is not None:
        return onnx_manifest["model"]
    return onnx_path.parent.name  # engines/<model>/<precision>.onnx


def _model_kind(onnx_manifest: dict | None, model: str) -> ModelKind | str:
    """The kind the ONNX's manifest records; without one, the model name (the kinds table knows it, or not)."""
    if onnx_manifest is not None:
        try:
            return kind_of_manifest(onnx_manifest)
        except ManifestError:
            pass  # a manifest of no known kind: the name decides, as for an ONNX from elsewhere
    return model


def _threshold(onnx_manifest: dict | None) -> dict:
    """The embedding threshold travels with the engine (calibrated or dlib's), and where it came from."""
    keys = ("threshold", "threshold_source")
    return {k: onnx_manifest[k] for k in keys if onnx_manifest and k in onnx_manifest}


def _relative(path: Path, start: Path) -> str:
    try:
        return str(path.resolve().relative_to(start.resolve()))
    except ValueError:
        return str(path.resolve())
