"""Backend selection: auto's order and its log, explicit choices, errors; the TensorRT-EP cache key.

The machine is described by monkeypatching the two probes (onnxruntime's provider list and "TensorRT
importable with a GPU"): that mocks the environment, and the selection logic runs for real.
"""

import logging
import sys

import numpy as np
import pytest

from conftest import save_add_one_onnx
from facestyle.backends import select
from facestyle.backends.onnxruntime import OnnxRuntimeBackend, tensorrt_ep_providers, trt_ep_cache_key
from facestyle.backends.trt import GpuInfo, TensorRTBackend
from facestyle.errors import BackendUnavailableError, BadInputError
from facestyle.manifest import file_sha256, write_manifest

CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]
WITH_TRT_EP = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture
def model_dir(tmp_path):
    """engines/face-embed/ with an fp32.onnx and its manifest (no engine yet)."""
    folder = tmp_path / "face-embed"
    folder.mkdir()
    onnx_path = save_add_one_onnx(folder / "fp32.onnx")
    write_manifest(
        folder / "fp32.manifest.json",
        {
            "model": "face-embed",
            "precision": "fp32",
            "artifact": onnx_path.name,
            "artifact_sha256": file_sha256(onnx_path),
            "contract": {},
            "inputs": [{"name": "x", "shape": ["batch", 3], "dtype": "float32"}],
        },
    )
    return folder


@pytest.fixture
def machine(monkeypatch):
    """Set what this machine has: machine(providers, tensorrt=True/False)."""

    def describe(providers, tensorrt=False):
        monkeypatch.setattr(select, "available_providers", lambda: list(providers))
        probe = (True, "TensorRT 10.9.0 with a CUDA GPU") if tensorrt else (False, "TensorRT is not installed here")
        monkeypatch.setattr(select, "tensorrt_probe", lambda: probe)
        monkeypatch.setattr(select, "gpu_info", lambda device_id=0: GpuInfo("NVIDIA H200", "9.0", "12.4") if tensorrt else None)

    return describe


def _with_engine(model_dir):
    (model_dir / "fp32.trt.engine").write_bytes(b"engine bytes")  # selection only looks for the file
    return model_dir


# -- auto -------------------------------------------------------------------------------------------
def test_auto_prefers_tensorrt_when_it_and_an_engine_are_here(model_dir, machine, caplog):
    machine(WITH_CUDA, tensorrt=True)
    with caplog.at_level(logging.DEBUG, logger="facestyle.backends"):
        backend = select.select_backend(_with_engine(model_dir))
    assert isinstance(backend, TensorRTBackend)
    assert backend.engine_path == model_dir / "fp32.trt.engine" and backend.onnx_path == model_dir / "fp32.onnx"
    assert "backend auto: chose tensorrt (TensorRT 10.9.0 with a CUDA GPU, engine " in caplog.text


def test_auto_without_an_engine_takes_onnxruntime_cuda_and_says_why(model_dir, machine, caplog):
    machine(WITH_CUDA, tensorrt=True)
    with caplog.at_level(logging.DEBUG, logger="facestyle.backends"):
        backend = select.select_backend(model_dir)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.requested_providers == [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    assert "skipped tensorrt (TensorRT 10.9.0 with a CUDA GPU, but no engine at" in caplog.text
    assert "backend auto: chose ort-cuda (onnxruntime CUDAExecutionProvider)" in caplog.text


def test_auto_without_tensorrt_takes_onnxruntime_cuda(model_dir, machine, caplog):
    machine(WITH_CUDA, tensorrt=False)
    with caplog.at_level(logging.DEBUG, logger="facestyle.backends"):
        kind, _ = select.choose_backend_kind(select.model_files(_with_engine(model_dir)))
    assert kind == "ort-cuda"
    assert "skipped tensorrt (TensorRT is not installed here)" in caplog.text


def test_auto_on_a_cpu_machine_runs_onnxruntime_cpu_for_real(model_dir, machine, caplog):
    machine(CPU_ONLY, tensorrt=False)
    with caplog.at_level(logging.DEBUG, logger="facestyle.backends"):
        backend = select.select_backend(model_dir / "fp32.onnx")
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert [m.split(" (")[0] for m in skipped] == ["backend auto: skipped tensorrt", "backend auto: skipped ort-cuda"]
    assert "onnxruntime here has no CUDAExecutionProvider (it has CPUExecutionProvider)" in skipped[1]
    with backend:
        assert backend.provider == "CPUExecutionProvider"
        out = backend.infer({"x": np.array([[1, 2, 3]], np.float32)})
    np.testing.assert_array_equal(out["y"], [[2, 3, 4]])


def test_auto_with_nothing_to_run_names_every_reason(tmp_path, machine):
    machine(CPU_ONLY, tensorrt=False)
    with pytest.raises(BackendUnavailableError, match=r"no backend can run .*fp32\.onnx: tensorrt: TensorRT is not installed here; "
                       r"ort-cuda: onnxruntime here has no CUDAExecutionProvider .*; ort-cpu: no ONNX model at"):
        select.select_backend(tmp_path / "fp32.onnx")


# -- explicit choices ------------------------------------------------------------------------------------
def test_explicit_unavailable_backend_raises_naming_what_is_available(model_dir, machine):
    machine(WITH_CUDA, tensorrt=False)
    with pytest.raises(BackendUnavailableError, match=r"backend 'tensorrt' is not available here: TensorRT is not installed here "
                       r"\(available: ort-cuda, ort-cpu\)"):
        select.select_backend(model_dir, "tensorrt")
    with pytest.raises(BackendUnavailableError, match=r"backend 'ort-trt' is not available here: onnxruntime here has no "
                       r"TensorrtExecutionProvider .*\(available: ort-cuda, ort-cpu\)"):
        select.select_backend(model_dir, "ort-trt")


def test_explicit_tensorrt_needs_an_engine(model_dir, machine):
    machine(WITH_CUDA, tensorrt=True)
    with pytest.raises(BackendUnavailableError, match=r"but no engine at .*fp32\.trt\.engine \(`facestyle build --engine trt`\)"):
        select.select_backend(model_dir, "tensorrt")


def test_explicit_cpu_is_chosen_even_with_a_gpu(model_dir, machine, caplog):
    machine(WITH_TRT_EP, tensorrt=True)
    with caplog.at_level(logging.DEBUG, logger="facestyle.backends"):
        backend = select.select_backend(_with_engine(model_dir), "ort-cpu")
    assert backend.requested_providers == ["CPUExecutionProvider"]
    assert "backend ort-cpu: onnxruntime CPUExecutionProvider" in caplog.text


def test_ort_trt_gets_cache_keyed_options_and_profiles_from_the_manifest(model_dir, machine, tmp_path):
    machine(WITH_TRT_EP, tensorrt=True)
    backend = select.select_backend(model_dir, "ort-trt", trt_ep_cache=tmp_path / "cache")
    (name, options), cuda, cpu = backend.requested_providers
    assert (name, cuda[0], cpu) == ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    assert options["trt_engine_cache_enable"] is True and options["trt_fp16_enable"] is False
    assert options["trt_engine_cache_path"].startswith(str(tmp_path / "cache" / "engine-"))
    # face-embed: batch 1 / 8 / 64, the other axes as the manifest records them
    assert (options["trt_profile_min_shapes"], options["trt_profile_opt_shapes"], options["trt_profile_max_shapes"]) == (
        "x:1x3", "x:8x3", "x:64x3")


def test_unknown_kind_and_unknown_file_type_are_input_errors(model_dir, machine):
    machine(CPU_ONLY)
    with pytest.raises(BadInputError, match=r"backend: expected one of auto, tensorrt, ort-trt, ort-cuda, ort-cpu, got 'cuda'"):
        select.select_backend(model_dir, "cuda")
    with pytest.raises(BadInputError, match=r"model\.pt: expected a model folder, an \.onnx file or a \.engine file"):
        select.select_backend(model_dir / "model.pt")


def test_model_files_from_folder_onnx_or_engine(model_dir):
    expected = select.ModelFiles(model_dir / "fp32.onnx", model_dir / "fp32.trt.engine")
    assert select.model_files(model_dir) == expected
    assert select.model_files(model_dir / "fp32.onnx") == expected
    assert select.model_files(model_dir / "fp32.trt.engine") == expected  # no manifest: the sibling ONNX
    assert select.model_files(model_dir, precision="fp16").onnx == model_dir / "fp16.onnx"


def test_tensorrt_probe_reports_a_missing_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail, as on this CPU machine
    usable, why = select.tensorrt_probe()
    assert not usable
    assert why.startswith("TensorRT is not installed or cannot load here") and "facestyle[gpu]" in why


# -- the TensorRT execution provider's cache key -------------------------------------------------------------
PROFILE = [{"chips": {"min": [1, 3, 150, 150], "opt": [8, 3, 150, 150], "max": [64, 3, 150, 150]}}]
KEY_ARGS = dict(model_sha256="a" * 64, profiles=PROFILE, precision="fp32", gpu_name="NVIDIA H200",
                ort_version="1.22.0", tensorrt_version="10.9.0")


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "b" * 64},
        {"profiles": [{"chips": {**PROFILE[0]["chips"], "max": [32, 3, 150, 150]}}]},
        {"profiles": None},
        {"precision": "fp16"},
        {"gpu_name": "NVIDIA A100-SXM4-80GB"},
        {"ort_version": "1.23.0"},
        {"tensorrt_version": "10.10.0"},
    ],
    ids=["model", "shapes", "no-profile", "precision", "gpu", "ort-version", "trt-version"],
)
def test_trt_ep_cache_key_changes_with_everything_an_engine_depends_on(change):
    assert trt_ep_cache_key(**{**KEY_ARGS, **change}) != trt_ep_cache_key(**KEY_ARGS)


def test_trt_ep_cache_key_is_stable():
    assert trt_ep_cache_key(**KEY_ARGS) == trt_ep_cache_key(**dict(KEY_ARGS))
    assert len(trt_ep_cache_key(**KEY_ARGS)) == 20


def test_trt_ep_timing_cache_is_shared_across_models_but_not_gpus(tmp_path):
    def options(sha, gpu):
        return tensorrt_ep_providers(tmp_path, sha, "fp32", gpu, PROFILE)[0][1]

    a, b, other_gpu = options("a" * 64, "H200"), options("b" * 64, "H200"), options("a" * 64, "A100")
    assert a["trt_engine_cache_path"] != b["trt_engine_cache_path"]
    assert a["trt_timing_cache_path"] == b["trt_timing_cache_path"] != other_gpu["trt_timing_cache_path"]
    assert a["trt_profile_max_shapes"] == "chips:64x3x150x150"


def test_every_runtime_backend_kind_opens_through_the_table():
    from facestyle.capabilities import BACKEND_KINDS, RUNTIME_BACKENDS

    assert {BACKEND_KINDS[k].ort_provider for k in RUNTIME_BACKENDS} <= set(select.OPENERS)
    assert select.KINDS == ("auto", *RUNTIME_BACKENDS)


def test_serve_offers_the_backends_of_the_capability_table():
    import argparse

    from facestyle.capabilities import BACKEND_CHOICES
    from facestyle.serve.server import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    backend = next(a for a in parser._actions if a.dest == "backend")
    assert tuple(backend.choices) == BACKEND_CHOICES


def test_ort_trt_engines_live_in_the_one_cache_folder_keyed_by_the_given_sha256(model_dir, machine, tmp_path, monkeypatch):
    machine(WITH_TRT_EP, tensorrt=True)
    monkeypatch.setenv("FACESTYLE_CACHE", str(tmp_path / "cache"))

    def cache_path(**kwargs):
        (_, options), *_ = select.select_backend(model_dir, "ort-trt", **kwargs).requested_providers
        return options["trt_engine_cache_path"]

    hashed_here = cache_path()
    assert hashed_here.startswith(str(tmp_path / "cache" / "ort-tensorrt" / "engine-"))
    assert cache_path(sha256=file_sha256(model_dir / "fp32.onnx")) == hashed_here
    assert cache_path(sha256="0" * 64) != hashed_here  # the loader's sha256 is the key, not a second hash
