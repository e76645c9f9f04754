"""The TensorRT native backend: runs a serialized engine, checked against its sidecar manifest.

Written against the documented TensorRT 10.x / 11.x Python API (name-based I/O tensors,
``execute_async_v3``) and cuda-python's runtime bindings (pycuda selectable). ``tensorrt`` and the
CUDA bindings are imported only when a backend is activated, never when this module is imported.
Whether the engine fits this machine is :mod:`.engine_fit`'s to decide.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import BackendUnavailableError, BadInputError, FacestyleError, ManifestError, ModelFormatError
from ...manifest import manifest_path, read_manifest
from ..base import Backend, TensorMeta
from .cuda_memory import CUDA_APIS, Allocation, cuda_api_named
from .engine_fit import deserialize_or_rebuild, onnx_path_of, resolve_engine
from .gpu import current_environment, import_tensorrt


# -- per-thread execution state ------------------------------------------------------------------------
@dataclass
class _TensorBuffer:
    """Pinned host + device memory for one I/O tensor, grown when a bigger shape comes."""

    device: Allocation
    pinned: Allocation
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
        is_input = lambda n: self._engine.get_tensor_mode(n) == self._trt.TensorIOMode.INPUT
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
