"""TensorRT native: the backend and everything it needs to decide, one job per module.

- :mod:`.profiles`: optimisation profiles from the kinds table's axis ranges, and their checks
- :mod:`.engine_fit`: whether an engine fits this machine; rebuild it or raise naming each difference
- :mod:`.gpu`: TensorRT (imported lazily) and the GPU as the CUDA driver describes it
- :mod:`.cuda_memory`: device and pinned memory, through cuda-python or pycuda
- :mod:`.runner`: :class:`TensorRTBackend`, one execution context per thread

Importing this package imports neither TensorRT nor any CUDA binding: they load on ``activate()``.
"""

from .cuda_memory import CUDA_APIS, cuda_api_named
from .engine_fit import (
    ENGINE_SUFFIX,
    EngineEnvironment,
    deserialize_or_rebuild,
    engine_differences,
    engine_path_for,
    onnx_path_of,
    rebuild_engine,
    resolve_engine,
)
from .gpu import GpuInfo, current_environment, gpu_info, import_tensorrt, tensorrt_major, visible_gpu_count
from .profiles import Profile, check_profiles, default_profiles, inputs_from_manifest
from .runner import TensorRTBackend

__all__ = [
    "CUDA_APIS",
    "ENGINE_SUFFIX",
    "EngineEnvironment",
    "GpuInfo",
    "Profile",
    "TensorRTBackend",
    "check_profiles",
    "cuda_api_named",
    "current_environment",
    "default_profiles",
    "deserialize_or_rebuild",
    "engine_differences",
    "engine_path_for",
    "gpu_info",
    "import_tensorrt",
    "inputs_from_manifest",
    "onnx_path_of",
    "rebuild_engine",
    "resolve_engine",
    "tensorrt_major",
    "visible_gpu_count",
]
