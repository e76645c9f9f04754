"""Does an engine fit this machine? The compatibility logic, rebuild-or-raise, profiles, and the
TensorRT backend's buffer and per-thread context handling, all on the CPU.

TensorRT cannot be installed here. The last section drives TensorRTBackend through a stand-in for the
documented TensorRT/CUDA calls (device memory as numpy arrays): it checks our buffer growth, profile
checks and one-context-per-thread logic, not TensorRT itself (tests/export/test_engine.py does that
where TensorRT and a GPU exist).
"""

import gc
import subprocess
import sys
import textwrap
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import import_blocker
from facestyle.backends.trt import (
    EngineEnvironment,
    TensorRTBackend,
    check_profiles,
    cuda_memory,
    default_profiles,
    deserialize_or_rebuild,
    engine_differences,
    engine_path_for,
    onnx_path_of,
    resolve_engine,
    runner as trt_backend,
)
from facestyle.errors import BackendUnavailableError, BadInputError, EngineMismatchError, ModelFormatError
from facestyle.manifest import file_sha256, write_manifest

ONNX_SHA = "0" * 64
HERE = EngineEnvironment("10.9.0.34", "NVIDIA H200", "9.0", ONNX_SHA, "12.4")


def _manifest(**changes):
    manifest = {
        "tensorrt": {"version": "10.9.0.34"},
        "gpu": {"name": "NVIDIA H200", "compute_capability": "9.0"},
        "onnx": {"file": "fp32.onnx", "sha256": ONNX_SHA},
    }
    for key, value in changes.items():
        manifest[key] = {**manifest[key], **value}
    return manifest


# -- engine_differences ---------------------------------------------------------------------------------
def test_an_engine_built_here_fits():
    assert engine_differences(_manifest(), HERE) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tensorrt": {"version": "10.8.0.43"}}, "TensorRT version: engine built with 10.8.0.43, this machine has 10.9.0.34"),
        ({"gpu": {"name": "NVIDIA A100-SXM4-80GB"}}, "GPU: engine built on NVIDIA A100-SXM4-80GB, this machine has NVIDIA H200"),
        ({"gpu": {"compute_capability": "8.0"}}, "compute capability: engine built for 8.0, this GPU is 9.0"),
        ({"onnx": {"sha256": "f" * 64}}, "ONNX: engine built from sha256 ffffffffffff, the ONNX now has 000000000000"),
    ],
    ids=["tensorrt-version", "gpu-name", "compute-capability", "onnx-sha256"],
)
def test_each_kind_of_difference_is_named(change, message):
    assert engine_differences(_manifest(**change), HERE) == [message]


def test_every_difference_is_listed_at_once():
    stale = _manifest(tensorrt={"version": "11.4.0"}, gpu={"name": "Tesla T4", "compute_capability": "7.5"})
    assert [d.split(":")[0] for d in engine_differences(stale, HERE)] == ["TensorRT version", "GPU", "compute capability"]


def test_the_onnx_is_not_compared_when_it_is_not_beside_the_engine():
    absent = EngineEnvironment("10.9.0.34", "NVIDIA H200", "9.0", onnx_sha256=None)
    assert engine_differences(_manifest(onnx={"sha256": "f" * 64}), absent) == []


def test_a_manifest_without_build_facts_does_not_fit():
    assert len(engine_differences({}, HERE)) == 4


# -- resolve_engine: load, raise, or rebuild ----------------------------------------------------------------
@pytest.fixture
def engine_dir(tmp_path):
    """fp32.onnx (bytes only) and fp32.trt.engine with a manifest saying it was built here."""
    onnx_path = tmp_path / "fp32.onnx"
    onnx_path.write_bytes(b"an onnx model")
    engine = engine_path_for(onnx_path)
    engine.write_bytes(b"a serialized engine")
    built_here = _manifest(onnx={"sha256": file_sha256(onnx_path)})
    write_manifest(
        tmp_path / "fp32.trt.manifest.json",
        {"model": "face-embed", "precision": "fp32", "artifact": engine.name, "artifact_sha256": file_sha256(engine),
         "contract": {}, "metadata_props": {"facestyle.model": '"face-embed"'}, "profiles": [], **built_here},
    )
    return tmp_path


def _here(folder):
    return EngineEnvironment("10.9.0.34", "NVIDIA H200", "9.0", file_sha256(folder / "fp32.onnx"))


def test_a_fitting_engine_resolves_to_its_manifest(engine_dir):
    manifest = resolve_engine(engine_dir / "fp32.trt.engine", _here(engine_dir))
    assert manifest["artifact"] == "fp32.trt.engine" and manifest["precision"] == "fp32"


def test_a_stale_engine_raises_naming_each_difference_and_the_way_out(engine_dir):
    (engine_dir / "fp32.onnx").write_bytes(b"a re-exported onnx model")
    elsewhere = EngineEnvironment("11.4.0", "NVIDIA H200", "9.0", file_sha256(engine_dir / "fp32.onnx"))
    with pytest.raises(EngineMismatchError) as error:
        resolve_engine(engine_dir / "fp32.trt.engine", elsewhere)
    message = str(error.value)
    assert message.startswith(f"{engine_dir / 'fp32.trt.engine'}: engine does not fit this machine: ")
    assert "TensorRT version: engine built with 10.9.0.34, this machine has 11.4.0; ONNX: engine built from sha256" in message
    assert message.endswith("Rebuild it from the ONNX (`facestyle build --engine trt`, or load with rebuild=True)")


def test_a_missing_or_altered_engine_is_a_mismatch_too(engine_dir):
    (engine_dir / "fp32.trt.engine").write_bytes(b"half an engi")
    with pytest.raises(EngineMismatchError, match=r"sha256 differs from its manifest"):
        resolve_engine(engine_dir / "fp32.trt.engine", _here(engine_dir))
    with pytest.raises(EngineMismatchError, match=r"fp16\.trt\.engine: engine does not fit this machine: .*no manifest"):
        resolve_engine(engine_dir / "fp16.trt.engine", _here(engine_dir))


def test_rebuild_goes_through_the_real_builder(engine_dir, monkeypatch):
    """With rebuild=True a stale engine reaches facestyle.export.engine, which needs TensorRT."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails, as on this CPU machine
    stale = EngineEnvironment("11.4.0", "NVIDIA H200", "9.0", None)
    with pytest.raises(BackendUnavailableError, match=r"TensorRT is not installed or cannot load here .*facestyle\[gpu\]"):
        resolve_engine(engine_dir / "fp32.trt.engine", stale, rebuild=True)


def test_rebuild_without_the_onnx_says_so(engine_dir):
    (engine_dir / "fp32.onnx").unlink()
    stale = EngineEnvironment("11.4.0", "NVIDIA H200", "9.0", None)
    with pytest.raises(EngineMismatchError, match=r"cannot rebuild the engine: its ONNX .*fp32\.onnx is missing"):
        resolve_engine(engine_dir / "fp32.trt.engine", stale, rebuild=True)


def test_failed_deserialization_means_rebuild_or_raise(engine_dir, monkeypatch):
    engine, manifest = engine_dir / "fp32.trt.engine", {"onnx": {"file": "fp32.onnx"}}
    assert deserialize_or_rebuild(engine, manifest, lambda data: ("engine", data)) == (("engine", b"a serialized engine"), manifest)
    for refuse in (lambda data: None, lambda data: 1 / 0):
        with pytest.raises(EngineMismatchError,
                           match=r"TensorRT could not deserialize it \(another TensorRT version, GPU or driver\)"):
            deserialize_or_rebuild(engine, manifest, refuse)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        deserialize_or_rebuild(engine, manifest, lambda data: None, rebuild=True)


def test_engine_and_onnx_paths_pair_up(tmp_path):
    assert engine_path_for(tmp_path / "fp16.onnx") == tmp_path / "fp16.trt.engine"
    assert onnx_path_of(tmp_path / "fp16.trt.engine", None) == tmp_path / "fp16.onnx"
    assert onnx_path_of(tmp_path / "x.trt.engine", {"onnx": {"file": "../m/fp32.onnx"}}) == tmp_path / "../m/fp32.onnx"


# -- optimisation profiles --------------------------------------------------------------------------------
def test_default_profiles_per_model_kind():
    (embed,) = default_profiles("face-embed", [("chips", [None, 3, 150, 150])])
    assert embed == {"chips": {"min": [1, 3, 150, 150], "opt": [8, 3, 150, 150], "max": [64, 3, 150, 150]}}
    (detect,) = default_profiles("face-detect", [("image", [None, 3, None, None])])
    assert detect == {"image": {"min": [1, 3, 64, 64], "opt": [1, 3, 480, 640], "max": [1, 3, 2048, 2048]}}
    (style,) = default_profiles("style-starry-night", [("image", [None, 3, None, None])])
    assert style["image"]["opt"] == [1, 3, 512, 512] and style["image"]["max"] == [1, 3, 1024, 1024]


def test_a_dynamic_axis_without_a_default_needs_explicit_profiles():
    with pytest.raises(ModelFormatError, match=r"m\.onnx: input 'tokens' has a dynamic axis 1 and there is no default range"):
        default_profiles("face-embed", [("tokens", [None, None])], "m.onnx")


@pytest.mark.parametrize(
    "bounds, message",
    [
        ({"min": [1, 3], "opt": [8, 3], "max": [64, 3]}, r"min shape must be positive ints like \[\?, 3, 150, 150\], got \[1, 3\]"),
        ({"min": [1, 3, 150, 150], "opt": [8, 3, 160, 150], "max": [64, 3, 150, 150]}, r"opt shape must be positive ints like"),
        ({"min": [9, 3, 150, 150], "opt": [8, 3, 150, 150], "max": [64, 3, 150, 150]}, r"needs min <= opt <= max on every axis"),
        ({"min": [1, 3, 150, 150], "max": [64, 3, 150, 150]}, r"expected keys min, opt, max, got \['max', 'min'\]"),
    ],
)
def test_profiles_are_checked_against_the_model(bounds, message):
    with pytest.raises(BadInputError, match=r"profile 0, input 'chips': " + message):
        check_profiles([{"chips": bounds}], [("chips", [None, 3, 150, 150])])


def test_profiles_must_name_the_model_inputs():
    with pytest.raises(BadInputError, match=r"profile 0: names inputs \['x'\], the model takes \['chips'\]"):
        check_profiles([{"x": {}}], [("chips", [None, 3, 150, 150])])
    with pytest.raises(BadInputError, match="expected at least one optimisation profile"):
        check_profiles([], [("chips", [None, 3, 150, 150])])


# -- the backend without TensorRT -----------------------------------------------------------------------------
def test_activating_without_tensorrt_is_a_clear_error(engine_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailableError, match=r"TensorRT is not installed or cannot load here"):
        TensorRTBackend(engine_dir / "fp32.trt.engine").activate()


def test_unknown_cuda_api_is_an_input_error(engine_dir):
    with pytest.raises(BadInputError, match=r"cuda_api: expected one of cuda-python, pycuda, got 'cupy'"):
        TensorRTBackend(engine_dir / "fp32.trt.engine", cuda_api="cupy")


def test_runtime_backends_import_neither_tensorrt_nor_cuda_nor_export():
    script = import_blocker("torch", "onnx", "tensorrt", "cuda", "pycuda", "facestyle.export") + textwrap.dedent(
        """
        import facestyle.backends.trt, facestyle.backends.select
        print("imported")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


# -- the backend's own logic, through a stand-in for TensorRT and CUDA -------------------------------------------
class _FakeCuda:
    """Device memory as numpy arrays keyed by fake pointers; copies happen at once."""

    def __init__(self):
        self.device, self.allocations, self.next_pointer = {}, 0, 4096

    def scope(self):
        import contextlib

        return contextlib.nullcontext()

    def create_stream(self):
        return object()

    def stream_handle(self, stream):
        return id(stream)

    def destroy_stream(self, stream):
        pass

    def synchronize(self, stream):
        pass

    def device_alloc(self, nbytes):
        pointer, self.next_pointer = self.next_pointer, self.next_pointer + nbytes + 4096
        self.device[pointer] = np.zeros(nbytes, np.uint8)
        self.allocations += 1
        return cuda_memory.Allocation(pointer, lambda: self.device.pop(pointer))

    def pinned_alloc(self, nbytes):
        return cuda_memory.Allocation(0, lambda: None, np.zeros(nbytes, np.uint8))

    def copy_to_device(self, pointer, host, stream):
        self.device[pointer][: host.nbytes] = host.reshape(-1).view(np.uint8)

    def copy_to_host(self, host, pointer, stream):
        host.reshape(-1).view(np.uint8)[:] = self.device[pointer][: host.nbytes]


class _FakeContext:
    """y = x + 1 on float32[batch, 3], batch 1..64, the way an IExecutionContext is driven."""

    def __init__(self, engine):
        self.engine, self.shapes, self.addresses, self.profile = engine, {}, {}, 0

    def set_optimization_profile_async(self, index, stream_handle):
        self.profile = index

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes.get("x", (-1, 3))

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = pointer

    def execute_async_v3(self, stream_handle):
        n = int(np.prod(self.shapes["x"])) * 4
        x = self.engine.cuda.device[self.addresses["x"]][:n].view(np.float32)
        self.engine.cuda.device[self.addresses["y"]][:n] = (x + 1).view(np.uint8)
        return True


class _FakeEngine:
    num_io_tensors, num_optimization_profiles = 2, 2

    def __init__(self, cuda):
        self.cuda, self.contexts = cuda, []

    def get_tensor_name(self, i):
        return ["x", "y"][i]

    def get_tensor_mode(self, name):
        return "input" if name == "x" else "output"

    def get_tensor_dtype(self, name):
        return "float"

    def get_tensor_shape(self, name):
        return (-1, 3)

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 3), (4, 3), (64, 3)]

    def create_execution_context(self):
        self.contexts.append(_FakeContext(self))
        return self.contexts[-1]


@pytest.fixture
def fake_gpu(engine_dir, monkeypatch):
    cuda = _FakeCuda()
    engine = _FakeEngine(cuda)
    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    fake_trt = SimpleNamespace(
        __version__="10.9.0.34",
        Logger=Logger,
        Runtime=lambda logger: SimpleNamespace(deserialize_cuda_engine=lambda data: engine),
        TensorIOMode=SimpleNamespace(INPUT="input"),
        nptype=lambda trt_type: np.float32,
    )
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: fake_trt)
    monkeypatch.setattr(trt_backend, "cuda_api_named", lambda name, device_id=0: cuda)
    monkeypatch.setattr(trt_backend, "current_environment", lambda trt, onnx, device_id=0: _here(engine_dir))
    backend = TensorRTBackend(engine_dir / "fp32.trt.engine").activate()
    yield SimpleNamespace(backend=backend, cuda=cuda, engine=engine)
    backend.deactivate()


def test_fake_engine_runs_through_the_backend_protocol(fake_gpu):
    backend = fake_gpu.backend
    assert backend.metadata == {"facestyle.model": '"face-embed"'}
    assert backend.input_metadata["x"].shape == (None, 3) and backend.input_metadata["x"].dtype == np.float32
    assert backend.model_path.name == "fp32.onnx"  # the engine's identity is the ONNX it came from
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(backend.infer({"x": x})["y"], x + 1)


def test_buffers_grow_with_the_shape_and_are_reused_when_it_shrinks(fake_gpu):
    backend, cuda = fake_gpu.backend, fake_gpu.cuda
    backend.infer({"x": np.zeros((2, 3), np.float32)})
    assert cuda.allocations == 2  # x and y
    big = np.random.default_rng(0).random((64, 3), dtype=np.float32)  # past the first 256-byte buffers
    np.testing.assert_array_equal(backend.infer({"x": big})["y"], big + 1)
    assert cuda.allocations == 4 and len(cuda.device) == 2  # grown, the small ones freed
    small = np.ones((1, 3), np.float32)
    out = backend.infer({"x": small})["y"]
    np.testing.assert_array_equal(out, small + 1)
    assert cuda.allocations == 4 and out.shape == (1, 3)


def test_shapes_outside_the_profile_are_refused_before_tensorrt_sees_them(fake_gpu):
    with pytest.raises(BadInputError, match=r"input 'x': shape \[65, 3\] is outside the engine's optimisation profile "
                       r"\(min \[1, 3\], max \[64, 3\]\); rebuild the engine with wider profiles"):
        fake_gpu.backend.infer({"x": np.zeros((65, 3), np.float32)})


def test_each_thread_gets_its_own_context_and_profile_up_to_the_engines_limit(fake_gpu):
    backend, barrier, results = fake_gpu.backend, threading.Barrier(3), {}

    def worker(index):
        try:
            results[index] = backend.infer({"x": np.full((1, 3), index, np.float32)})["y"][0, 0]
        except BackendUnavailableError as exc:
            results[index] = str(exc)
        barrier.wait()  # all three alive at once: two hold the engine's two profiles

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
        t.join(0.5)  # start them one after another so the third is the one refused
    for t in threads:
        t.join()
    assert results[0] == 1 and results[1] == 2
    assert "2 threads already use this engine, which has 2 optimisation profile(s)" in results[2]
    assert sorted(c.profile for c in fake_gpu.engine.contexts) == [0, 1]
    gc.collect()  # the threads have ended: their contexts go back to the pool
    done = []
    thread = threading.Thread(target=lambda: done.append(backend.infer({"x": np.zeros((1, 3), np.float32)})["y"][0, 0]))
    thread.start()
    thread.join()
    assert done == [1] and len(fake_gpu.engine.contexts) == 2  # reused, not created


def test_deactivate_frees_every_buffer(fake_gpu):
    fake_gpu.backend.infer({"x": np.zeros((3, 3), np.float32)})
    fake_gpu.backend.deactivate()
    assert fake_gpu.cuda.device == {}
