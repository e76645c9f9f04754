"""Which backend runs a model: chosen explicitly, or ``auto`` with the choice and its reason logged.

The backend kinds, their onnxruntime providers and ``auto``'s order are the capability table's
(``facestyle.capabilities.BACKEND_KINDS``): ``auto`` prefers TensorRT native (an engine built for
this model, TensorRT importable, a CUDA GPU visible), then onnxruntime's CUDA provider, then
onnxruntime on the CPU. The TensorRT execution provider (``ort-trt``) is only used when asked for.
Asking for a backend that is not available here raises :class:`BackendUnavailableError` naming what
is available; nothing falls back silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..capabilities import AUTO_ORDER, BACKEND_CHOICES, BACKEND_KINDS, RUNTIME_BACKENDS, precision_named
from ..errors import BackendUnavailableError, BadInputError, ManifestError, ModelFormatError
from ..kinds import kind_of_manifest
from ..manifest import file_sha256, manifest_path, read_manifest
from ..paths import cache_dir
from .base import Backend
from .onnxruntime import OnnxRuntimeBackend, available_providers, cuda_providers, tensorrt_ep_providers
from .trt import (
    TensorRTBackend,
    default_profiles,
    engine_path_for,
    gpu_info,
    import_tensorrt,
    inputs_from_manifest,
    onnx_path_of,
    visible_gpu_count,
)

log = logging.getLogger("facestyle.backends")

KINDS = BACKEND_CHOICES  # what `backend=` accepts: "auto" and each runtime backend kind
TRT_EP_CACHE = "ort-tensorrt"  # the TensorRT EP's engines: facestyle.paths.cache_dir(TRT_EP_CACHE) unless given


@dataclass(frozen=True)
class ModelFiles:
    """The artifacts one model may run from: its ONNX, and the TensorRT engine built from it."""

    onnx: Path | None
    engine: Path | None


def model_files(model: str | Path, precision: str = "fp32") -> ModelFiles:
    """``engines/face-embed`` (a folder), ``.../fp32.onnx`` or ``.../fp32.trt.engine`` -> both paths."""
    model = Path(model)
    if model.is_dir():
        model = model / f"{precision}.onnx"
    if model.suffix == ".onnx":
        return ModelFiles(model, engine_path_for(model))
    if model.suffix == ".engine":
        try:
            manifest = read_manifest(manifest_path(model))
        except ManifestError:
            manifest = None
        return ModelFiles(onnx_path_of(model, manifest), model)
    raise BadInputError(f"{model}: expected a model folder, an .onnx file or a .engine file")


# -- what this machine has -----------------------------------------------------------------------------
def tensorrt_probe() -> tuple[bool, str]:
    """(usable, why): TensorRT importable and a CUDA GPU visible."""
    try:
        trt = import_tensorrt()
    except BackendUnavailableError as exc:
        return False, str(exc)
    if visible_gpu_count() == 0:
        return False, f"TensorRT {trt.__version__} is installed but the CUDA driver shows no GPU"
    return True, f"TensorRT {trt.__version__} with a CUDA GPU"


def backend_status(kind: str, files: ModelFiles) -> tuple[bool, str]:
    """(available for this model here, why) for one backend kind."""
    provider = BACKEND_KINDS[kind].ort_provider
    if provider is None:  # the one runtime kind that is not onnxruntime: TensorRT native
        return _tensorrt_status(files)
    providers = available_providers()
    if provider not in providers:
        return False, f"onnxruntime here has no {provider} (it has {', '.join(providers)})"
    if files.onnx is None or not files.onnx.is_file():
        return False, f"no ONNX model at {files.onnx}; run `facestyle build`"
    return True, f"onnxruntime {provider}"


def _tensorrt_status(files: ModelFiles) -> tuple[bool, str]:
    ok, why = tensorrt_probe()
    if not ok:
        return False, why
    if files.engine is None or not files.engine.is_file():
        return False, f"{why}, but no engine at {files.engine} (`facestyle build --engine trt`)"
    return True, f"{why}, engine {files.engine}"


def availability(files: ModelFiles) -> dict[str, tuple[bool, str]]:
    """Each backend kind -> (available for this model here, why)."""
    return {kind: backend_status(kind, files) for kind in RUNTIME_BACKENDS}


def choose_backend_kind(files: ModelFiles, kind: str = "auto") -> tuple[str, str]:
    """(kind, reason): the backend that will run; raises BackendUnavailableError if that cannot be."""
    if kind not in KINDS:
        raise BadInputError(f"backend: expected one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "auto":
        reasons = {}
        for candidate in AUTO_ORDER:
            ok, reasons[candidate] = backend_status(candidate, files)
            if ok:
                artifact = files.onnx or files.engine
                log.info("backend auto: chose %s (%s) for %s/%s", candidate, reasons[candidate],
                         artifact.parent.name, artifact.name)
                return candidate, reasons[candidate]
            log.debug("backend auto: skipped %s (%s)", candidate, reasons[candidate])
        raise BackendUnavailableError(
            f"no backend can run {files.onnx or files.engine}: " + "; ".join(f"{k}: {why}" for k, why in reasons.items())
        )
    ok, why = backend_status(kind, files)
    if not ok:
        usable = [k for k, (k_ok, _) in availability(files).items() if k_ok]
        raise BackendUnavailableError(
            f"backend {kind!r} is not available here: {why} (available: {', '.join(usable) or 'none'})"
        )
    log.info("backend %s: %s", kind, why)
    return kind, why


def select_backend(
    model: str | Path,
    kind: str = "auto",
    *,
    precision: str = "fp32",
    rebuild: bool = False,
    cuda_api: str = "cuda-python",
    device_id: int = 0,
    trt_ep_cache: str | Path | None = None,
    sha256: str | None = None,
) -> Backend:
    """The backend (not yet activated) that runs ``model`` (a model folder, an ONNX or an engine).
    ``sha256``: the ONNX's, when the caller already checked it against its manifest."""
    files = model_files(model, precision)
    chosen, _ = choose_backend_kind(files, kind)
    how = Opening(files, precision, rebuild, cuda_api, device_id, trt_ep_cache, sha256)
    return OPENERS[BACKEND_KINDS[chosen].ort_provider](how)


@dataclass(frozen=True)
class Opening:
    """What an opener needs to make the backend of one model."""

    files: ModelFiles
    precision: str
    rebuild: bool
    cuda_api: str
    device_id: int
    trt_ep_cache: str | Path | None
    sha256: str | None  # the ONNX's, when the caller has it (checked against its manifest): not hashed again


def _tensorrt_native(how: Opening) -> Backend:
    return TensorRTBackend(how.files.engine, how.files.onnx, rebuild=how.rebuild, cuda_api=how.cuda_api,
                           device_id=how.device_id)


def _ort_tensorrt_ep(how: Opening) -> Backend:
    return OnnxRuntimeBackend(how.files.onnx, _tensorrt_ep(how))


def _ort_cuda(how: Opening) -> Backend:
    return OnnxRuntimeBackend(how.files.onnx, cuda_providers(how.device_id))


def _ort_cpu(how: Opening) -> Backend:
    return OnnxRuntimeBackend(how.files.onnx, ["CPUExecutionProvider"])


# How each row of the capability table opens, keyed by its ``ort_provider`` (None: TensorRT native).
OPENERS: dict[str | None, Callable[[Opening], Backend]] = {
    None: _tensorrt_native,
    "TensorrtExecutionProvider": _ort_tensorrt_ep,
    "CUDAExecutionProvider": _ort_cuda,
    "CPUExecutionProvider": _ort_cpu,
}


def _tensorrt_ep(how: Opening):
    """TensorRT-EP providers for the ONNX, with profiles from its manifest when it has one."""
    onnx, precision = how.files.onnx, how.precision
    profiles = None  # without them the EP builds an engine per input shape it meets (still keyed by model)
    try:
        manifest = read_manifest(manifest_path(onnx))
        precision = manifest["precision"]
        if inputs := inputs_from_manifest(manifest):
            profiles = default_profiles(kind_of_manifest(manifest, str(onnx)), inputs, str(onnx))
    except (ManifestError, ModelFormatError):
        pass
    gpu = gpu_info(how.device_id)
    return tensorrt_ep_providers(
        how.trt_ep_cache or cache_dir(TRT_EP_CACHE),
        how.sha256 or file_sha256(onnx),
        precision,
        gpu.name if gpu else "unknown GPU",
        profiles,
        how.device_id,
    )


def backend_for(artifact: str | Path, backend: str | None = None, providers=("CPUExecutionProvider",),
                precision: str = "fp32", sha256: str | None = None) -> Backend:
    """What ``from_engines`` loaders run on: ``backend`` (a kind of :data:`KINDS`) if given, else ORT with ``providers``.
    ``sha256``: the artifact's, as the loader checked it (not hashed again)."""
    if backend is None:
        chosen = OnnxRuntimeBackend(artifact, providers)
    else:
        chosen = select_backend(artifact, backend, precision=precision, sha256=sha256)
    on_ort_cpu = isinstance(chosen, OnnxRuntimeBackend) and chosen.requested_providers[:1] == ["CPUExecutionProvider"]
    if on_ort_cpu and precision_named(precision).tensorrt_arithmetic:
        # int8-trt is TensorRT's form. onnxruntime's fused u8s8 CPU kernels saturate on CPUs without
        # VNNI (embedding cosine to fp32 down to 0.92, measured); run the Q/DQ graph as written instead,
        # which is TensorRT's arithmetic: accurate, and slow (it is for checking accuracy, not speed).
        chosen.optimize_graph = False
        log.info("int8-trt on the CPU: Q/DQ graph run unfused, as TensorRT computes it (use int8 for CPU speed)")
    return chosen
