"""onnxruntime backend. Asking for a provider that is not available raises: no silent CPU fallback.

Providers are names (``"CPUExecutionProvider"``) or ``(name, options)`` pairs, as onnxruntime takes
them. :func:`cuda_providers` and :func:`tensorrt_ep_providers` give the GPU ones: the CUDA provider,
and the TensorRT execution provider with its engine cache keyed by everything an engine depends on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, ModelFormatError
from .base import Backend, TensorMeta
from .ort_cache import open_inference

THREADS_ENV = "FACESTYLE_THREADS"
_default_threads: int | None = None


def set_default_threads(threads: int | None) -> None:
    """Intra-op threads of every onnxruntime InferenceSession opened from now on that does not name its own
    (``facestyle --threads N``; also ``$FACESTYLE_THREADS``). None: onnxruntime's choice (one per core)."""
    global _default_threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        from ..errors import BadInputError

        raise BadInputError(f"threads: expected an int >= 1, got {threads!r}")
    _default_threads = threads


def default_threads() -> int | None:
    if _default_threads is not None:
        return _default_threads
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        from ..errors import BadInputError

        raise BadInputError(f"${THREADS_ENV}={value!r}: expected an int >= 1")
    return int(value)


_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


Provider = str | tuple[str, dict]


def import_onnxruntime():
    """The onnxruntime module. It comes from an extra (``cpu`` or ``gpu``), so its absence names the install."""
    try:
        import onnxruntime
    except ImportError as exc:
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == "onnxruntime"
        reason = "is not installed" if missing else f"cannot be imported ({exc})"
        raise BackendUnavailableError(f"onnxruntime {reason}: pip install 'facestyle[cpu]' "
                                      "(or 'facestyle[gpu]' for onnxruntime-gpu, never both)") from None
    return onnxruntime


def available_providers() -> list[str]:
    onnxruntime = import_onnxruntime()

    return list(onnxruntime.get_available_providers())


def provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


def cuda_providers(device_id: int = 0) -> list[Provider]:
    """The CUDA provider first; onnxruntime puts the few nodes CUDA lacks on the CPU."""
    return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]


def trt_ep_cache_key(
    model_sha256: str,
    profiles: Sequence[Mapping] | None,
    precision: str,
    gpu_name: str,
    ort_version: str,
    tensorrt_version: str | None = None,
) -> str:
    """Names one TensorRT-EP engine cache folder.

    The EP reuses whatever engine it finds in its cache folder, even one built for other shapes, another
    model or another GPU, so the folder is keyed by all of them: the model's sha256, the shape profiles,
    the precision, the GPU and the onnxruntime (and TensorRT, where known) versions.
    """
    payload = {
        "model_sha256": model_sha256,
        "profiles": list(profiles or []),
        "precision": precision,
        "gpu": gpu_name,
        "onnxruntime": ort_version,
        "tensorrt": tensorrt_version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _profile_option(profiles: Sequence[Mapping], which: str) -> str:
    """``{"chips": {"min": [1, 3, 150, 150]}}`` -> ``"chips:1x3x150x150"`` (onnxruntime's format)."""
    return ",".join(f"{name}:{'x'.join(str(d) for d in shapes[which])}" for p in profiles for name, shapes in p.items())


def tensorrt_ep_providers(
    cache_root: str | Path,
    model_sha256: str,
    precision: str,
    gpu_name: str,
    profiles: Sequence[Mapping] | None = None,
    device_id: int = 0,
    workspace_bytes: int = 1 << 30,
    tensorrt_version: str | None = None,
) -> list[Provider]:
    """TensorRT EP first (engine and timing caches under ``cache_root``), then CUDA, then the CPU.

    fp16 is never switched on here: that would let TensorRT lower an fp32 graph on its own, a precision
    nobody validated. Without the fp16/int8 flags recent onnxruntime builds the TensorRT network strongly
    typed (microsoft/onnxruntime PR 24298), so an fp16 or Q/DQ graph runs in the precision written into it.
    """
    onnxruntime = import_onnxruntime()

    key = trt_ep_cache_key(model_sha256, profiles, precision, gpu_name, onnxruntime.__version__, tensorrt_version)
    # The timing cache only depends on the GPU and the versions: shared by every model built here.
    timing_key = trt_ep_cache_key("", None, "", gpu_name, onnxruntime.__version__, tensorrt_version)
    options = {
        "device_id": device_id,
        "trt_max_workspace_size": int(workspace_bytes),
        "trt_fp16_enable": False,
        "trt_int8_enable": False,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(Path(cache_root) / f"engine-{key}"),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(Path(cache_root) / f"timing-{timing_key}"),
    }
    if profiles:
        for which in ("min", "opt", "max"):
            options[f"trt_profile_{which}_shapes"] = _profile_option(profiles, which)
    return [("TensorrtExecutionProvider", options), *cuda_providers(device_id)]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        providers: Sequence[Provider] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
        optimize_graph: bool = True,
    ):
        super().__init__()
        self.model_path = Path(model_path)
        self.requested_providers = list(providers)
        self.intra_op_threads = intra_op_threads
        self.optimize_graph = optimize_graph
        self.inference = None

    @property
    def provider(self) -> str:
        """The execution provider that actually runs the model."""
        self.activate()
        return self.inference.get_providers()[0]

    def _activate(self) -> None:
        onnxruntime = import_onnxruntime()

        names = [provider_name(p) for p in self.requested_providers]
        missing = [n for n in names if n not in available_providers()]
        if missing:
            raise BackendUnavailableError(
                f"onnxruntime here has no {', '.join(missing)} (available: {', '.join(available_providers())})"
            )
        if not self.model_path.is_file():
            raise ModelFormatError("no such ONNX model; run `facestyle build`", self.model_path)
        options = onnxruntime.SessionOptions()
        threads = self.intra_op_threads or default_threads()
        if threads:
            options.intra_op_num_threads = threads
        # One model call at a time per InferenceSession: its ops run in order on the intra-op pool, so no second
        # (inter-op) pool competes for the cores; parallel requests come from the callers' own threads.
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        # Pool threads sleep when a call ends instead of spinning: an app runs several models in turn
        # (detect, then embed), and each InferenceSession's spinning pool took cores from the next model's
        # (a 512 px photo identified in 44 ms instead of 56-60 ms, same run); busy machines gain too.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not self.optimize_graph:
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            if self.optimize_graph:
                inference = open_inference(onnxruntime, self.model_path, options, self.requested_providers)
            else:
                inference = onnxruntime.InferenceSession(str(self.model_path), options, providers=self.requested_providers)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelFormatError(f"onnxruntime cannot load it: {exc}", self.model_path) from None
        used = inference.get_providers()
        if used[0] != names[0]:
            raise BackendUnavailableError(f"asked onnxruntime for {names[0]} but it runs {self.model_path} on {used[0]}")
        self.inference = inference

    def _deactivate(self) -> None:
        self.inference = None

    def _input_metadata(self) -> list[TensorMeta]:
        metas = []
        for i in self.inference.get_inputs():
            if i.type not in _ORT_TYPES:
                raise ModelFormatError(f"input {i.name!r} has unsupported type {i.type}", self.model_path)
            shape = tuple(d if isinstance(d, int) else None for d in i.shape)
            metas.append(TensorMeta(i.name, np.dtype(_ORT_TYPES[i.type]), shape))
        return metas

    def _metadata(self) -> dict[str, str]:
        return dict(self.inference.get_modelmeta().custom_metadata_map)

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.inference.get_outputs()]
        return dict(zip(names, self.inference.run(names, dict(feed))))
