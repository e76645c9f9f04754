"""Device and pinned host memory, streams and copies, two ways: NVIDIA's cuda-python or pycuda.

Both offer the same small interface (``scope``, ``create_stream``, ``device_alloc``, ``pinned_alloc``,
``copy_to_device``, ...) that :class:`~facestyle.backends.trt.runner.TensorRTBackend` drives; each is
imported only when a backend picks it (:func:`cuda_api_named`).
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...errors import BackendUnavailableError, BadInputError, FacestyleError

CUDA_APIS = ("cuda-python", "pycuda")


@dataclass
class Allocation:
    """One device or pinned host allocation, and how to free it."""

    pointer: int
    release: Callable[[], None]
    host: np.ndarray | None = None  # uint8 view of pinned host memory


class _CudaPython:
    """NVIDIA's cuda-python runtime bindings (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6)."""

    def __init__(self, device_id: int):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart
            except ImportError:
                raise BackendUnavailableError(
                    "cuda-python is not installed (pip install cuda-python), or pass cuda_api='pycuda'"
                ) from None
        self.rt = cudart
        self.device_id = device_id
        self._call(cudart.cudaSetDevice(device_id), "cudaSetDevice")

    def _call(self, result, what: str):
        err, *values = result
        if getattr(err, "value", err) != 0:  # cudaSuccess
            name = self.rt.cudaGetErrorName(err)[1]
            raise FacestyleError(f"CUDA call {what} failed: {name.decode() if isinstance(name, bytes) else name}")
        return values[0] if len(values) == 1 else None

    @contextlib.contextmanager
    def scope(self):
        # The current device is per host thread in the CUDA runtime: set it on every thread that runs.
        self._call(self.rt.cudaSetDevice(self.device_id), "cudaSetDevice")
        yield

    def create_stream(self):
        return self._call(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def destroy_stream(self, stream) -> None:
        self._call(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def synchronize(self, stream) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def device_alloc(self, nbytes: int) -> Allocation:
        pointer = int(self._call(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        return Allocation(pointer, lambda: self._call(self.rt.cudaFree(pointer), "cudaFree"))

    def pinned_alloc(self, nbytes: int) -> Allocation:
        pointer = int(self._call(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        host = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_uint8)), (nbytes,))
        return Allocation(pointer, lambda: self._call(self.rt.cudaFreeHost(pointer), "cudaFreeHost"), host)

    def copy_to_device(self, device_pointer: int, host: np.ndarray, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self.rt.cudaMemcpyAsync(device_pointer, host.ctypes.data, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def copy_to_host(self, host: np.ndarray, device_pointer: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self.rt.cudaMemcpyAsync(host.ctypes.data, device_pointer, host.nbytes, kind, stream), "cudaMemcpyAsync")


class _PyCuda:
    """pycuda. Its contexts are per thread, so each call pushes the device's primary context."""

    def __init__(self, device_id: int):
        try:
            import pycuda.driver as driver
        except ImportError:
            raise BackendUnavailableError("pycuda is not installed (pip install pycuda), or pass cuda_api='cuda-python'") from None
        driver.init()
        self.driver = driver
        self.context = driver.Device(device_id).retain_primary_context()

    @contextlib.contextmanager
    def scope(self):
        self.context.push()
        try:
            yield
        finally:
            self.driver.Context.pop()

    def create_stream(self):
        return self.driver.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def destroy_stream(self, stream) -> None:
        pass  # pycuda frees a stream when the object goes

    def synchronize(self, stream) -> None:
        stream.synchronize()

    def device_alloc(self, nbytes: int) -> Allocation:
        memory = self.driver.mem_alloc(nbytes)
        return Allocation(int(memory), memory.free)

    def pinned_alloc(self, nbytes: int) -> Allocation:
        host = self.driver.pagelocked_empty(nbytes, np.uint8)
        return Allocation(host.ctypes.data, host.base.free, host)

    def copy_to_device(self, device_pointer: int, host: np.ndarray, stream) -> None:
        self.driver.memcpy_htod_async(device_pointer, host, stream)

    def copy_to_host(self, host: np.ndarray, device_pointer: int, stream) -> None:
        self.driver.memcpy_dtoh_async(host, device_pointer, stream)


def cuda_api_named(name: str, device_id: int = 0):
    if name == "cuda-python":
        return _CudaPython(device_id)
    if name == "pycuda":
        return _PyCuda(device_id)
    raise BadInputError(f"cuda_api: expected one of {', '.join(CUDA_APIS)}, got {name!r}")
