"""The machine TensorRT runs on: TensorRT itself (imported only when asked for), and the GPU as the
CUDA driver describes it (through ctypes: no nvidia-smi, no CUDA Python package)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackendUnavailableError
from ...manifest import file_sha256
from .engine_fit import EngineEnvironment


def import_tensorrt():
    """``tensorrt``, or BackendUnavailableError saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(
            f"TensorRT is not installed or cannot load here ({exc}); install the `gpu` extra "
            "(pip install 'facestyle[gpu]') on a machine with an NVIDIA GPU"
        ) from None
    return tensorrt


def tensorrt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"
    driver_version: str  # CUDA driver API version, "12.4"


@functools.lru_cache(maxsize=1)
def _libcuda():
    """The CUDA driver library (it ships with the NVIDIA driver), or None."""
    for name in ("libcuda.so.1", ctypes.util.find_library("cuda"), "nvcuda.dll"):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _cuda_ok(result: int) -> bool:
    return result == 0  # CUDA_SUCCESS


def visible_gpu_count() -> int:
    """CUDA GPUs this process can see, asked of the driver itself (no nvidia-smi, no CUDA Python package)."""
    lib = _libcuda()
    count = ctypes.c_int(0)
    if lib is None or not _cuda_ok(lib.cuInit(0)) or not _cuda_ok(lib.cuDeviceGetCount(ctypes.byref(count))):
        return 0
    return count.value


def gpu_info(device_id: int = 0) -> GpuInfo | None:
    """Name, compute capability and driver version of one GPU, from the CUDA driver API; None without one."""
    if visible_gpu_count() <= device_id:
        return None
    lib = _libcuda()
    device, major, minor, driver = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    calls = (
        lib.cuDeviceGet(ctypes.byref(device), device_id),
        lib.cuDeviceGetName(name, len(name), device),
        lib.cuDeviceGetAttribute(ctypes.byref(major), 75, device),  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
        lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, device),  # ..._MINOR
        lib.cuDriverGetVersion(ctypes.byref(driver)),
    )
    if not all(_cuda_ok(c) for c in calls):
        return None
    return GpuInfo(
        name.value.decode(errors="replace"),
        f"{major.value}.{minor.value}",
        f"{driver.value // 1000}.{driver.value % 1000 // 10}",
    )


def current_environment(trt, onnx_path: Path | None, device_id: int = 0) -> EngineEnvironment:
    gpu = gpu_info(device_id)
    if gpu is None:
        raise BackendUnavailableError(f"TensorRT needs an NVIDIA GPU: the CUDA driver shows no GPU {device_id} here")
    onnx_sha = file_sha256(onnx_path) if onnx_path is not None and onnx_path.is_file() else None
    return EngineEnvironment(str(trt.__version__), gpu.name, gpu.compute_capability, onnx_sha, gpu.driver_version)
