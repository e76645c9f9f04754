"""EngineFromOnnx. The first tests run anywhere; the rest build real engines and skip, saying why,
where TensorRT or an NVIDIA GPU is absent (TensorRT's builder cannot be installed on this project's
CPU machines)."""

import sys
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from conftest import save_add_one_onnx
from facestyle.backends.trt import TensorRTBackend, visible_gpu_count
from facestyle.errors import BackendUnavailableError, ModelFormatError
from facestyle.export.engine import _contract, _network_flags, engine_from_onnx, onnx_description
from facestyle.manifest import file_sha256, read_manifest

PROFILE = [{"x": {"min": [1, 3], "opt": [4, 3], "max": [16, 3]}}]


@pytest.fixture
def add_one(tmp_path):
    """y = x + 1 on float32[batch, 3], with a facestyle contract in its metadata_props."""
    return save_add_one_onnx(tmp_path / "add-one" / "fp32.onnx",
                             {"facestyle.model": '"add-one"', "facestyle.scale": "0.00390625"})


# -- anywhere -----------------------------------------------------------------------------------------
def test_onnx_description_reads_inputs_and_contract(add_one):
    inputs, metadata = onnx_description(add_one)
    assert inputs == [("x", [None, 3])]
    assert _contract(metadata) == {"model": "add-one", "scale": 0.00390625}


def test_unreadable_onnx_names_the_file(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(ModelFormatError, match=r"junk\.onnx: not a readable ONNX model"):
        onnx_description(junk)


def test_network_is_strongly_typed_in_tensorrt_10_and_11():
    flag = SimpleNamespace(STRONGLY_TYPED=1)
    assert _network_flags(SimpleNamespace(__version__="10.9.0.34", NetworkDefinitionCreationFlag=flag)) == 1 << 1
    assert _network_flags(SimpleNamespace(__version__="11.4.0")) == 0  # always strongly typed; the flag is ignored


def test_without_tensorrt_the_builder_says_how_to_get_it(add_one, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailableError,
                       match=r"TensorRT is not installed or cannot load here .*pip install 'facestyle\[gpu\]'"):
        engine_from_onnx(add_one)


# -- with TensorRT and a GPU ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tensorrt():
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (its builder is not installable on CPU-only machines)")
    if visible_gpu_count() == 0:
        pytest.skip("TensorRT is installed but the CUDA driver shows no NVIDIA GPU to build or run engines on")
    return trt


def test_engine_from_onnx_writes_engine_manifest_and_timing_cache(tensorrt, add_one, tmp_path):
    cache = tmp_path / "timing.cache"
    engine = engine_from_onnx(add_one, profiles=PROFILE, timing_cache_path=cache)
    assert engine == add_one.with_name("fp32.trt.engine") and cache.stat().st_size > 0
    manifest = read_manifest(add_one.with_name("fp32.trt.manifest.json"))
    assert manifest["artifact_sha256"] == file_sha256(engine)
    assert manifest["onnx"] == {"file": "fp32.onnx", "sha256": file_sha256(add_one)}
    assert manifest["tensorrt"]["version"] == tensorrt.__version__ and manifest["profiles"] == PROFILE
    assert manifest["gpu"]["name"] and manifest["gpu"]["compute_capability"].count(".") == 1
    assert manifest["contract"]["scale"] == 0.00390625 and manifest["metadata_props"]["facestyle.model"] == '"add-one"'


def test_engine_runs_like_the_onnx(tensorrt, add_one):
    engine = engine_from_onnx(add_one, profiles=PROFILE)
    x = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    with TensorRTBackend(engine) as backend:
        np.testing.assert_array_equal(backend.infer({"x": x})["y"], x + 1)
        np.testing.assert_array_equal(backend.infer({"x": x[:1]})["y"], x[:1] + 1)  # shapes change, buffers reused


def test_stale_engine_is_refused_then_rebuilt(tensorrt, add_one):
    from facestyle.errors import EngineMismatchError

    engine = engine_from_onnx(add_one, profiles=PROFILE)
    onnx_model = onnx.load(add_one)
    onnx_model.metadata_props.add(key="facestyle.note", value='"re-exported"')
    onnx.save(onnx_model, add_one)  # the ONNX changed after the engine was built
    with pytest.raises(EngineMismatchError, match=r"ONNX: engine built from sha256"):
        TensorRTBackend(engine).activate()
    with TensorRTBackend(engine, rebuild=True) as backend:
        assert backend.manifest["onnx"]["sha256"] == file_sha256(add_one)
        assert backend.manifest["profiles"] == PROFILE  # rebuilt with the profiles it had


def test_face_embedding_engine_matches_onnxruntime(tensorrt, face_onnx, tmp_path):
    from facestyle.backends.onnxruntime import OnnxRuntimeBackend

    engine = engine_from_onnx(face_onnx, tmp_path / "fp32.trt.engine")
    chips = np.random.default_rng(1).normal(0, 0.3, (7, 3, 150, 150)).astype(np.float32)
    with TensorRTBackend(engine, onnx_path=face_onnx) as trt_backend, OnnxRuntimeBackend(face_onnx) as ort_backend:
        got = trt_backend.infer({"chips": chips})["embeddings"]
        want = ort_backend.infer({"chips": chips})["embeddings"]
    assert np.abs(got - want).max() < 1e-4  # fp32 throughout (TF32 off)
