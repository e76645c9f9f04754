"""What the CPU's instruction set means for onnxruntime's int8 kernels, read from ``/proc/cpuinfo``
without importing anything heavy.

onnxruntime's CPU int8 form multiplies uint8 activations by int8 weights (u8s8). On x86-64 without
VNNI (AVX2, and AVX-512 without ``avx512_vnni``) the kernels add each pair of uint8 x int8 products
into an int16 with saturation: 255 x 127 x 2 = 64770 does not fit in 32767, so a model whose weights
use the full int8 range can be wrong there. With 7-bit weights (-64..64, "reduced range") the pair is
at most 255 x 64 x 2 = 32640 and never saturates; VNNI instructions (``avx512_vnni``, ``avx_vnni``)
accumulate in int32 and never saturate either. Other architectures (ARM) do not take that path.
TensorRT's int8 form (int8 activations) goes through the same kernels when onnxruntime runs it on a
CPU, and saturates the same way; TensorRT itself accumulates in int32.
"""

from __future__ import annotations

import logging
import platform
from functools import lru_cache
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
RECORDED_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")  # what int8 kernels choose by
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
log = logging.getLogger("facestyle")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (the ``flags`` line of ``/proc/cpuinfo``); empty where that is unreadable."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    return bool(set(VNNI_FLAGS) & (cpu_flags() if flags is None else flags))


def cpu_model() -> str:
    """The CPU's model name as the system reports it (e.g. "AMD EPYC 7B13")."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def u8s8_saturates(flags: frozenset[str] | None = None, machine: str | None = None) -> bool:
    """Whether onnxruntime's u8s8 kernels can saturate here: an x86 CPU without VNNI (unknown flags
    count as no VNNI)."""
    return (machine or platform.machine()).lower() in X86_MACHINES and not has_vnni(flags)


def cpu_record(flags: frozenset[str] | None = None) -> dict:
    """The CPU an int8 decision was taken on: model, the flags int8 kernels choose by, VNNI or not."""
    flags = cpu_flags() if flags is None else flags
    return {"model": cpu_model(), "machine": platform.machine(), "flags": [f for f in RECORDED_FLAGS if f in flags],
            "vnni": has_vnni(flags), "u8s8_saturates": u8s8_saturates(flags)}


def saturating_weights(manifest: dict) -> bool:
    """Whether a manifest describes an int8 model with full-range (8-bit) weights: the CPU form
    (uint8 activations), or TensorRT's (int8 activations, which onnxruntime's CPU kernels shift to uint8
    and saturate the same way). A manifest written before the weight range was recorded describes a
    full-range model."""
    calibration = manifest.get("calibration") or {}
    return "activations" in calibration and calibration.get("weight_range", "full") == "full"


_WARNED: set[tuple[str, str]] = set()  # (manifest file, artifact sha256) already warned about


def warn_if_saturating(manifest: dict, where: str, providers) -> bool:
    """A warning, once per model (file and sha256) per process, when a full-range int8 model is about
    to run on onnxruntime's CPU kernels of a CPU where they saturate. Returns whether it applies."""
    names = [p if isinstance(p, str) else p[0] for p in providers or ()]
    applies = names[:1] == ["CPUExecutionProvider"] and saturating_weights(manifest) and u8s8_saturates()
    key = (where, str(manifest.get("artifact_sha256")))
    if applies and key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s: int8 model with full-range (8-bit) weights on a CPU without VNNI: onnxruntime's "
                    "int8 kernels can saturate here and give wrong outputs; on this CPU run the int8 "
                    "precision rebuilt with 7-bit weights (`facestyle build --precision int8 --force`)", where)
    return applies
