"""Precision variants of a built fp32 ONNX model: fp16, and int8 with explicit Q/DQ nodes.

TensorRT 10/11 builds strongly typed networks, so reduced precision is written into the ONNX graph
before any engine is built (docs/field-notes.md). One module per concern:

- ``fp16``: :func:`fp16_from_onnx` (norms and reductions kept float32, float32 I/O);
- ``int8``: :func:`int8_from_onnx`, the flavours (the calibrated rows of ``facestyle.capabilities``),
  the weights' range (7-bit where the CPU's int8 kernels would saturate), node exclusions ("@first" / "@last");
- ``readers``: calibration readers, one per model kind for the export kinds table;
- ``sensitivity``: :func:`layer_sensitivity`, which layers to keep in float;
- ``measure``: a variant against its fp32 (drift, LFW, threshold, speed, detector agreement, PSNR);
- ``variants``: :func:`build_variants`, artifacts and manifests under ``engines/<model>/``.

Where their data come from is ``facestyle.export.datasets``. The names below are imported on first
use, so importing this package imports neither onnx nor onnxruntime.
"""

from __future__ import annotations

import importlib

from facestyle.capabilities import PRECISION_NAMES as PRECISIONS

_EXPORTS = {
    "fp16": ("fp16_from_onnx", "KEEP_FP32_OPS"),
    "int8": ("int8_from_onnx", "quantisable_nodes", "resolve_exclusions", "edge_nodes", "INT8_FLAVOURS",
             "CALIBRATION_METHODS", "WEIGHT_RANGES", "weight_range_for"),
    "readers": ("CalibrationReader", "FeedListReader", "FaceChipReader", "PhotoReader", "StylePhotoReader",
                "style_reader", "face_chip_calibration", "photo_calibration", "style_calibration"),
    "sensitivity": ("layer_sensitivity",),
    "variants": ("build_variants", "VariantJob", "RECIPE_VERSION"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["PRECISIONS", *_HOME]


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
