"""TensorRT native backend, and what decides whether an engine file fits this machine.

Written against the documented TensorRT 10.x / 11.x Python API (name-based I/O tensors,
``execute_async_v3``) and cuda-python's runtime bindings (pycuda selectable). ``tensorrt`` and the
CUDA bindings are imported only when a backend is activated, never when this module is imported.

Engines are tied to the GPU model, the TensorRT version and the ONNX they came from, and TensorRT
has no API that says whether an engine fits: the sidecar manifest (``<precision>.trt.manifest.json``,
never a header in front of the engine bytes, which would break trtexec and every native loader)
records what it was built for, :func:`engine_differences` compares that with here, and a failed
deserialization counts as a mismatch too. Either way: rebuild from the ONNX (``rebuild=True``) or
raise :class:`EngineMismatchError` naming each difference.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import (
    BackendUnavailableError,
    BadInputError,
    EngineMismatchError,
    FacestyleError,
    ManifestError,
    ModelFormatError,
)
from ..manifest import artifact_of, file_sha256, manifest_path, read_manifest
from .base import Backend, TensorMeta

ENGINE_SUFFIX = ".trt.engine"
CUDA_APIS = ("cuda-python", "pycuda")

# A profile maps each input name to its {"min", "opt", "max"} shapes (lists of ints), JSON as it is.
Profile = dict[str, dict[str, list[int]]]

# Per model kind: what each dynamic axis ranges over (min, opt, max). Embedding batches are formed by
# FaceEmbedder (max_batch 32 by default); the detector sees one tiled pyramid at a time; style takes
# one photo of any size.
DEFAULT_AXIS_RANGES = {
    "face-embed": {"batch": (1, 8, 64)},
    "face-detect": {"batch": (1, 1, 1), "height": (64, 480, 2048), "width": (64, 640, 2048)},
    "style": {"batch": (1, 1, 1), "height": (64, 512, 1024), "width": (64, 512, 1024)},
}


# -- paths ------------------------------------------------------------------------------------
def engine_path_for(onnx_path: str | Path) -> Path:
    """``engines/face-embed/fp32.onnx`` -> ``engines/face-embed/fp32.trt.engine``.

    The extra ``.trt`` keeps the engine's manifest (``fp32.trt.manifest.json``) apart from the ONNX's.
    """
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.stem + ENGINE_SUFFIX)


# -- optimisation profiles ------------------------------------------------------------------------
def model_kind(name: str) -> str:
    """The profile family of a model name: ``face-embed``, ``face-detect`` or ``style`` (any ``style*``)."""
    return "style" if name.startswith("style") else name


def _axis_name(rank: int, axis: int) -> str:
    if axis == 0:
        return "batch"
    if rank == 4 and axis in (2, 3):  # NCHW
        return "height" if axis == 2 else "width"
    return f"axis {axis}"


def default_profiles(kind: str, inputs: Sequence[tuple[str, Sequence[int | None]]], source: str = "model") -> list[Profile]:
    """One profile covering ``inputs`` ((name, shape) with None for a dynamic axis) for a model ``kind``."""
    ranges = DEFAULT_AXIS_RANGES.get(model_kind(kind))
    profile: Profile = {}
    for name, shape in inputs:
        bounds = {"min": [], "opt": [], "max": []}
        for axis, dim in enumerate(shape):
            axis_name = _axis_name(len(shape), axis)
            if dim is not None:
                low = opt = high = int(dim)
            elif ranges and axis_name in ranges:
                low, opt, high = ranges[axis_name]
            else:
                raise ModelFormatError(
                    f"input {name!r} has a dynamic {axis_name} and there is no default range for a "
                    f"{kind!r} model: pass profiles explicitly",
                    source,
                )
            for key, value in zip(("min", "opt", "max"), (low, opt, high)):
                bounds[key].append(value)
        profile[name] = bounds
    return [profile]


def check_profiles(profiles: Sequence[Profile], inputs: Sequence[tuple[str, Sequence[int | None]]]) -> None:
    """Each profile names every input once, with shapes of the input's rank that keep its fixed axes
    and grow min <= opt <= max."""
    if not profiles:
        raise BadInputError("profiles: expected at least one optimisation profile, got none")
    declared = {name: list(shape) for name, shape in inputs}
    for number, profile in enumerate(profiles):
        if sorted(profile) != sorted(declared):
            raise BadInputError(f"profile {number}: names inputs {sorted(profile)}, the model takes {sorted(declared)}")
        for name, shape in declared.items():
            _check_profile_input(number, name, shape, profile[name])


def _check_profile_input(number: int, name: str, shape: list[int | None], bounds: Mapping) -> None:
    want = "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
    where = f"profile {number}, input {name!r}"
    if sorted(bounds) != ["max", "min", "opt"]:
        raise BadInputError(f"{where}: expected keys min, opt, max, got {sorted(bounds)}")
    for key in ("min", "opt", "max"):
        dims = list(bounds[key])
        fits = len(dims) == len(shape) and all(isinstance(d, int) and d > 0 for d in dims)
        if not fits or any(fixed is not None and fixed != d for fixed, d in zip(shape, dims)):
            raise BadInputError(f"{where}: {key} shape must be positive ints like {want}, got {dims}")
    if not all(lo <= op <= hi for lo, op, hi in zip(bounds["min"], bounds["opt"], bounds["max"])):
        raise BadInputError(f"{where}: needs min <= opt <= max on every axis, got {dict(bounds)}")


def inputs_from_manifest(manifest: Mapping) -> list[tuple[str, list[int | None]]]:
    """(name, shape) of each input as an ONNX manifest records it (a string dimension is dynamic)."""
    return [(i["name"], [d if isinstance(d, int) else None for d in i["shape"]]) for i in manifest.get("inputs", [])]


# -- does an engine fit here? -----------------------------------------------------------------------
@dataclass(frozen=True)
class EngineEnvironment:
    """What an engine must have been built for to run here."""

    tensorrt_version: str
    gpu_name: str | None
    compute_capability: str | None  # "9.0"
    onnx_sha256: str | None = None  # the ONNX now beside the engine; None: not there to compare
    driver_version: str | None = None  # recorded only: TensorRT's own deserialization judges it


def engine_differences(manifest: Mapping, environment: EngineEnvironment) -> list[str]:
    """Every reason an engine described by ``manifest`` does not fit ``environment``; empty if it does.

    The TensorRT version must match exactly (an engine is only guaranteed to load in the version that
    built it), the GPU by name and compute capability, and the ONNX by sha256 (else the engine runs a
    model that is no longer the one on disk).
    """
    built_trt = (manifest.get("tensorrt") or {}).get("version")
    gpu = manifest.get("gpu") or {}
    built_onnx = (manifest.get("onnx") or {}).get("sha256")
    differences = []
    if built_trt != environment.tensorrt_version:
        differences.append(f"TensorRT version: engine built with {built_trt}, this machine has {environment.tensorrt_version}")
    if gpu.get("name") != environment.gpu_name:
        differences.append(f"GPU: engine built on {gpu.get('name')}, this machine has {environment.gpu_name}")
    if gpu.get("compute_capability") != environment.compute_capability:
        differences.append(
            f"compute capability: engine built for {gpu.get('compute_capability')}, this GPU is {environment.compute_capability}"
        )
    if environment.onnx_sha256 is not None and built_onnx != environment.onnx_sha256:
        differences.append(
            f"ONNX: engine built from sha256 {str(built_onnx)[:12]}, the ONNX now has {environment.onnx_sha256[:12]}"
        )
    return differences


def onnx_path_of(engine_path: Path, manifest: Mapping | None) -> Path | None:
    """The ONNX an engine was built from: its manifest says, else the sibling of the same precision."""
    recorded = (manifest or {}).get("onnx", {}).get("file")
    if recorded:
        return engine_path.parent / recorded
    if engine_path.name.endswith(ENGINE_SUFFIX):
        return engine_path.with_name(engine_path.name[: -len(ENGINE_SUFFIX)] + ".onnx")
    return None


def rebuild_engine(engine_path: Path, onnx_path: Path | None, previous: Mapping | None) -> dict:
    """Build ``engine_path`` again from its ONNX, with the profiles and settings it had; returns the new manifest.

    The only place the runtime reaches into ``facestyle.export``, and only when asked to rebuild.
    """
    if onnx_path is None or not onnx_path.is_file():
        raise EngineMismatchError(
            f"{engine_path}: cannot rebuild the engine: its ONNX {onnx_path} is missing; run `facestyle build`"
        )
    from facestyle.export.engine import engine_from_onnx  # lazy: the runtime never imports export otherwise

    previous = previous or {}
    options = {key: previous[key] for key in ("profiles", "workspace_bytes", "concurrent_contexts", "allow_tf32") if key in previous}
    engine_from_onnx(onnx_path, engine_path, precision=previous.get("precision"), **options)
    return read_manifest(manifest_path(engine_path))


def _mismatch(engine_path: Path, reasons: Sequence[str]) -> EngineMismatchError:
    return EngineMismatchError(
        f"{engine_path}: engine does not fit this machine: {'; '.join(reasons)}. Rebuild it from the ONNX "
        "(`facestyle build --engine trt`, or load with rebuild=True)"
    )


def resolve_engine(engine_path: str | Path, environment: EngineEnvironment, rebuild: bool = False) -> dict:
    """The manifest of an engine that fits ``environment``, rebuilding it first when allowed.

    Raises :class:`EngineMismatchError` naming each difference (or the missing engine) otherwise.
    """
    engine_path = Path(engine_path)
    try:
        manifest = read_manifest(manifest_path(engine_path))
        artifact_of(manifest_path(engine_path), manifest)  # the engine is there and is what was written
        reasons = engine_differences(manifest, environment)
    except ManifestError as exc:
        manifest, reasons = None, [str(exc)]
    if not reasons:
        return manifest
    if not rebuild:
        raise _mismatch(engine_path, reasons)
    return rebuild_engine(engine_path, onnx_path_of(engine_path, manifest), manifest)


def deserialize_or_rebuild(
    engine_path: Path, manifest: dict, deserialize: Callable[[bytes], object], rebuild: bool = False
) -> tuple[object, dict]:
    """Deserialize the engine; a failure (None or an exception) means "does not fit": rebuild once or raise."""
    engine = _try_deserialize(engine_path, deserialize)
    if engine is not None:
        return engine, manifest
    reason = "TensorRT could not deserialize it (another TensorRT version, GPU or driver)"
    if not rebuild:
        raise _mismatch(engine_path, [reason])
    manifest = rebuild_engine(engine_path, onnx_path_of(engine_path, manifest), manifest)
    engine = _try_deserialize(engine_path, deserialize)
    if engine is None:
        raise EngineMismatchError(f"{engine_path}: TensorRT cannot deserialize the engine it has just built")
    return engine, manifest


def _try_deserialize(engine_path: Path, deserialize: Callable[[bytes], object]):
    try:
        return deserialize(engine_path.read_bytes())
    except Exception:  # TensorRT raises its own pybind types; any failure means the same here
        return None


# -- the machine: TensorRT and the GPU ---------------------------------------------------------------
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


# -- device and pinned host memory, two ways ------------------------------------------------------------
@dataclass
class _Allocation:
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

    def device_alloc(self, nbytes: int) -> _Allocation:
        pointer = int(self._call(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        return _Allocation(pointer, lambda: self._call(self.rt.cudaFree(pointer), "cudaFree"))

    def pinned_alloc(self, nbytes: int) -> _Allocation:
        pointer = int(self._call(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        host = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_uint8)), (nbytes,))
        return _Allocation(pointer, lambda: self._call(self.rt.cudaFreeHost(pointer), "cudaFreeHost"), host)

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

    def device_alloc(self, nbytes: int) -> _Allocation:
        memory = self.driver.mem_alloc(nbytes)
        return _Allocation(int(memory), memory.free)

    def pinned_alloc(self, nbytes: int) -> _Allocation:
        host = self.driver.pagelocked_empty(nbytes, np.uint8)
        return _Allocation(host.ctypes.data, host.base.free, host)

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


# -- per-thread execution state ------------------------------------------------------------------------
@dataclass
class _TensorBuffer:
    """Pinned host + device memory for one I/O tensor, grown when a bigger shape comes."""

    device: _Allocation
    pinned: _Allocation
    capacity: int

    def host_view(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return self.pinned.host[:nbytes].view(dtype).reshape(shape)

    def free(self) -> None:
        self.device.release()
        self.pinned.release()


@dataclass
class _Slot:
    """One execution context with its own optimisation profile, stream and buffers: one thread's."""

    profile: int
    context: object
    stream: object
    buffers: dict[str, _TensorBuffer] = field(default_factory=dict)


class _SlotHolder:
    """Lives in a thread's threading.local; when the thread ends it is collected and its slot freed."""

    def __init__(self, slot: _Slot):
        self.slot = slot


class TensorRTBackend(Backend):
    """Runs a serialized TensorRT engine, checked against its sidecar manifest.

    >>> backend = TensorRTBackend("engines/face-embed/fp32.trt.engine").activate()
    >>> backend.infer({"chips": chips})["embeddings"]

    Each thread that calls ``infer`` gets its own execution context, CUDA stream and buffers. Engines
    with dynamic shapes allow one context per optimisation profile, so an engine built with
    ``concurrent_contexts=N`` serves N threads at once; a thread's context goes back when it ends.
    ``model_path`` is the ONNX the engine was built from (its identity), or the engine without one.
    """

    name = "tensorrt"

    def __init__(
        self,
        engine_path: str | Path,
        onnx_path: str | Path | None = None,
        rebuild: bool = False,
        cuda_api: str = "cuda-python",
        device_id: int = 0,
    ):
        super().__init__()
        if cuda_api not in CUDA_APIS:
            raise BadInputError(f"cuda_api: expected one of {', '.join(CUDA_APIS)}, got {cuda_api!r}")
        self.engine_path = Path(engine_path)
        self.onnx_path = Path(onnx_path) if onnx_path is not None else None
        self.rebuild = rebuild
        self.cuda_api_name = cuda_api
        self.device_id = device_id
        self.manifest: dict | None = None
        self._engine = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._free_slots: list[_Slot] = []
        self._all_slots: list[_Slot] = []
        self._finalizers: list[weakref.finalize] = []

    @property
    def model_path(self) -> Path:
        return self.onnx_path if self.onnx_path is not None and self.onnx_path.is_file() else self.engine_path

    @property
    def provider(self) -> str:
        return "TensorRT"

    # -- protocol ---------------------------------------------------------------------------------
    def _activate(self) -> None:
        trt = import_tensorrt()
        self._cuda = cuda_api_named(self.cuda_api_name, self.device_id)
        previous = self._readable_manifest()
        if self.onnx_path is None:
            self.onnx_path = onnx_path_of(self.engine_path, previous)
        environment = current_environment(trt, self.onnx_path, self.device_id)
        manifest = resolve_engine(self.engine_path, environment, self.rebuild)
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with self._cuda.scope():
            self._engine, self.manifest = deserialize_or_rebuild(
                self.engine_path, manifest, self._runtime.deserialize_cuda_engine, self.rebuild
            )
        self._profiles = int(self._engine.num_optimization_profiles)
        self._inputs_names, self._output_names = self._io_names()

    def _readable_manifest(self) -> dict | None:
        try:
            return read_manifest(manifest_path(self.engine_path))
        except ManifestError:
            return None

    def _deactivate(self) -> None:
        with self._lock:
            for finalizer in self._finalizers:
                finalizer.detach()
            with self._cuda.scope():
                for slot in self._all_slots:
                    for buffer in slot.buffers.values():
                        buffer.free()
                    self._cuda.destroy_stream(slot.stream)
            self._finalizers, self._free_slots, self._all_slots = [], [], []
            self._local = threading.local()
            self._engine = None

    def _io_names(self) -> tuple[list[str], list[str]]:
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = lambda n: self._engine.get_tensor_mode(n) == self._trt.TensorIOMode.INPUT  # noqa: E731
        return [n for n in names if is_input(n)], [n for n in names if not is_input(n)]

    def _dtype(self, name: str) -> np.dtype:
        trt_type = self._engine.get_tensor_dtype(name)
        try:
            return np.dtype(self._trt.nptype(trt_type))
        except TypeError:
            raise ModelFormatError(f"tensor {name!r} has type {trt_type}, which numpy cannot hold", self.engine_path) from None

    def _input_metadata(self) -> list[TensorMeta]:
        metas = []
        for name in self._inputs_names:
            shape = tuple(None if d < 0 else int(d) for d in self._engine.get_tensor_shape(name))
            metas.append(TensorMeta(name, self._dtype(name), shape))
        return metas

    def _metadata(self) -> dict[str, str]:
        return dict(self.manifest.get("metadata_props", {}))

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        slot = self._thread_slot()
        cuda = self._cuda
        with cuda.scope():
            for name in self._inputs_names:
                self._stage_input(slot, name, np.ascontiguousarray(feed[name]))
            outputs = {name: self._bind_output(slot, name) for name in self._output_names}
            if not slot.context.execute_async_v3(cuda.stream_handle(slot.stream)):
                raise FacestyleError(f"{self.engine_path}: TensorRT failed to run the engine (see its log)")
            for name, host in outputs.items():
                cuda.copy_to_host(host, slot.buffers[name].device.pointer, slot.stream)
            cuda.synchronize(slot.stream)
        return {name: host.copy() for name, host in outputs.items()}  # the pinned buffers are reused

    # -- the steps of one inference -------------------------------------------------------------------
    def _stage_input(self, slot: _Slot, name: str, array: np.ndarray) -> None:
        self._check_in_profile(slot.profile, name, array.shape)
        if not slot.context.set_input_shape(name, tuple(array.shape)):
            raise BadInputError(f"input {name!r}: TensorRT refused shape {list(array.shape)}")
        buffer = self._buffer(slot, name, array.nbytes)
        host = buffer.host_view(array.dtype, array.shape)
        np.copyto(host, array)
        slot.context.set_tensor_address(name, buffer.device.pointer)
        self._cuda.copy_to_device(buffer.device.pointer, host, slot.stream)

    def _bind_output(self, slot: _Slot, name: str) -> np.ndarray:
        shape = tuple(int(d) for d in slot.context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise ModelFormatError(
                f"output {name!r} has shape {list(shape)} after the input shapes were set: data-dependent "
                "output shapes are not supported",
                self.engine_path,
            )
        dtype = self._dtype(name)
        buffer = self._buffer(slot, name, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        slot.context.set_tensor_address(name, buffer.device.pointer)
        return buffer.host_view(dtype, shape)

    def _check_in_profile(self, profile: int, name: str, shape: tuple[int, ...]) -> None:
        if None not in self._inputs[name].shape:
            return  # a static input has no profile range; the base class checked its shape
        low, _, high = (tuple(int(d) for d in dims) for dims in self._engine.get_tensor_profile_shape(name, profile))
        if not all(lo <= d <= hi for lo, d, hi in zip(low, shape, high)):
            raise BadInputError(
                f"input {name!r}: shape {list(shape)} is outside the engine's optimisation profile "
                f"(min {list(low)}, max {list(high)}); rebuild the engine with wider profiles"
            )

    def _buffer(self, slot: _Slot, name: str, nbytes: int) -> _TensorBuffer:
        """The tensor's buffer, replaced by a bigger one when this shape needs more bytes."""
        buffer = slot.buffers.get(name)
        if buffer is None or buffer.capacity < nbytes:
            if buffer is not None:
                self._cuda.synchronize(slot.stream)  # nothing may still be copying from the old one
                buffer.free()
            size = max(nbytes, 256)
            buffer = _TensorBuffer(self._cuda.device_alloc(size), self._cuda.pinned_alloc(size), size)
            slot.buffers[name] = buffer
        return buffer

    # -- one execution context per thread ------------------------------------------------------------------
    def _thread_slot(self) -> _Slot:
        holder = getattr(self._local, "holder", None)
        if holder is None:
            slot = self._acquire_slot()
            holder = _SlotHolder(slot)
            with self._lock:
                self._finalizers.append(weakref.finalize(holder, self._release_slot, slot))
            self._local.holder = holder
        return holder.slot

    def _acquire_slot(self) -> _Slot:
        with self._lock:
            if self._free_slots:
                return self._free_slots.pop()
            if len(self._all_slots) >= self._profiles:
                raise BackendUnavailableError(
                    f"{self.engine_path}: {len(self._all_slots)} threads already use this engine, which has "
                    f"{self._profiles} optimisation profile(s), one per concurrent thread; rebuild it with "
                    "more concurrent_contexts or share fewer threads"
                )
            slot = self._new_slot(len(self._all_slots))
            self._all_slots.append(slot)
            return slot

    def _new_slot(self, profile: int) -> _Slot:
        with self._cuda.scope():
            context = self._engine.create_execution_context()
            stream = self._cuda.create_stream()
            if profile:
                context.set_optimization_profile_async(profile, self._cuda.stream_handle(stream))
                self._cuda.synchronize(stream)
        return _Slot(profile, context, stream)

    def _release_slot(self, slot: _Slot) -> None:
        with self._lock:
            if slot in self._all_slots:
                self._free_slots.append(slot)
