"""facestyle.cpu: which CPUs saturate onnxruntime's int8 kernels, and which int8 manifests that concerns."""

import logging

import pytest

from facestyle import cpu

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512 = AVX2 | {"avx512f", "avx512bw"}


@pytest.mark.parametrize("flags, machine, saturates", [
    (AVX2, "x86_64", True),
    (AVX512, "x86_64", True),  # AVX-512 without VNNI adds product pairs in int16 too
    (AVX512 | {"avx512_vnni"}, "x86_64", False),
    (AVX2 | {"avx_vnni"}, "AMD64", False),
    (frozenset(), "x86_64", True),  # flags unknown: assume the worst
    (frozenset({"asimd", "asimddp"}), "aarch64", False),
])
def test_u8s8_saturates_on_x86_without_vnni(flags, machine, saturates):
    assert cpu.u8s8_saturates(flags, machine) is saturates
    assert cpu.has_vnni(flags) is (not saturates and machine != "aarch64")


def test_cpu_record_keeps_the_flags_int8_kernels_choose_by():
    record = cpu.cpu_record(AVX512 | {"avx512_vnni", "sse4_2"})
    assert record["flags"] == ["avx2", "avx512f", "avx512bw", "avx512_vnni"]
    assert record["vnni"] is True and record["u8s8_saturates"] is False and record["model"]


def test_this_cpus_flags_are_read():
    with open("/proc/cpuinfo") as f:
        line = next((line for line in f if line.startswith("flags")), None)
    if line is None:
        pytest.skip("no flags line in /proc/cpuinfo")
    assert cpu.cpu_flags() == frozenset(line.split(":", 1)[1].split())


def int8_manifest(activations="uint8 asymmetric", **calibration):
    return {"precision": "int8", "artifact_sha256": "ab" * 32,
            "calibration": {"activations": activations, "weights": "int8 symmetric per-channel", **calibration}}


def test_saturating_weights_reads_the_manifest():
    assert cpu.saturating_weights(int8_manifest(weight_range="full"))
    assert cpu.saturating_weights(int8_manifest())  # written before the weight range was recorded: full range
    assert not cpu.saturating_weights(int8_manifest(weight_range="reduced"))
    assert cpu.saturating_weights(int8_manifest("int8 symmetric", weight_range="full"))  # TensorRT's form, on the CPU
    assert not cpu.saturating_weights({"precision": "fp32"})


def test_the_warning_is_given_once_per_model_and_only_on_the_cpu_provider(caplog):
    caplog.set_level(logging.WARNING, logger="facestyle")
    where = "engines/demo/int8.manifest.json"
    expected = cpu.u8s8_saturates()
    assert cpu.warn_if_saturating(int8_manifest(weight_range="full"), where, ["CPUExecutionProvider"]) is expected
    assert cpu.warn_if_saturating(int8_manifest(weight_range="full"), where, [("CPUExecutionProvider", {})]) is expected
    assert not cpu.warn_if_saturating(int8_manifest(weight_range="full"), where, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert not cpu.warn_if_saturating(int8_manifest(weight_range="reduced"), where, ["CPUExecutionProvider"])
    messages = [r.getMessage() for r in caplog.records]
    warning = (f"{where}: int8 model with full-range (8-bit) weights on a CPU without VNNI: onnxruntime's "
               "int8 kernels can saturate here and give wrong outputs; on this CPU run the int8 "
               "precision rebuilt with 7-bit weights (`facestyle build --precision int8 --force`)")
    assert messages == ([warning] if expected else [])
