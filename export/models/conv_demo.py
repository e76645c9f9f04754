"""Conv1d and Conv3d through the one export path: small torch modules, their specs, real-ish inputs.

- ``conv3d-demo``: the seed's example, a 14x14x14 volume with one channel and 16 filters of 5x5x5
  -> 10x10x10x16 (PyTorch's NCDHW: (N, 1, 14, 14, 14) -> (N, 16, 10, 10, 10)).
- ``conv1d-demo``: RGB signals of length 128 -> Conv1d(3, 8, 7, pad 3) + ReLU -> Conv1d(8, 16, 5,
  stride 2, dilation 2, pad 4) -> (N, 16, 64).

Weights are PyTorch's default initialisation under a fixed seed (demos: nothing is learned). Inputs
are cut from real photos (scikit-image's public-domain data): a volume is 14 consecutive 14x14 grey
windows sliding one pixel down and right per slice (a camera moving over the scene), a signal is
an image row. :func:`export_demo` exports with ``onnx_from_module`` and checks onnxruntime against
PyTorch with ``validate_onnx``; :func:`demo_variants` writes fp16 and int8 variants (calibrated on
other windows than the ones measured) and measures their drift from fp32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..spec import ModelSpec, TensorSpec

SEED = 0

CONV3D_DEMO = ModelSpec(
    name="conv3d-demo",
    inputs=(TensorSpec("volume", ("batch", 1, 14, 14, 14)),),
    outputs=(TensorSpec("features", ("batch", 16, 10, 10, 10)),),
    opset=18, atol=1e-5, rtol=0.0,
)
CONV1D_DEMO = ModelSpec(
    name="conv1d-demo",
    inputs=(TensorSpec("signal", ("batch", 3, 128)),),
    outputs=(TensorSpec("features", ("batch", 16, 64)),),
    opset=18, atol=1e-5, rtol=0.0,
)
SPECS = {s.name: s for s in (CONV3D_DEMO, CONV1D_DEMO)}


class Conv3dDemo(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 16, kernel_size=5)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        return self.conv(volume)


class Conv1dDemo(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(3, 8, kernel_size=7, padding=3)
        self.conv2 = nn.Conv1d(8, 16, kernel_size=5, stride=2, dilation=2, padding=4)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(signal)))


def demo_module(name: str) -> nn.Module:
    if name not in SPECS:
        raise KeyError(name)
    torch.manual_seed(SEED)
    return (Conv3dDemo() if name == "conv3d-demo" else Conv1dDemo()).eval()


def demo_inputs(name: str, count: int, start: int = 0) -> np.ndarray:
    """``count`` real-ish inputs for ``name`` (float32 0..1), from photo positions ``start`` onwards."""
    from facestyle.export.sample_inputs import natural_images

    photos = natural_images([(240, 320)] * 4)
    out = []
    for k in range(start, start + count):
        photo = photos[k % len(photos)].astype(np.float32) / 255.0
        y, x = 10 + (k // len(photos)) * 23 % 200, 20 + (k // len(photos)) * 37 % 280
        if name == "conv3d-demo":
            grey = photo.mean(axis=2)
            out.append(np.stack([grey[y + s : y + s + 14, x + s : x + s + 14] for s in range(14)])[None])
        else:
            out.append(np.ascontiguousarray(photo[y, x : x + 128 if x + 128 <= 320 else 320].T))
    if name == "conv1d-demo":
        out = [o if o.shape[1] == 128 else np.pad(o, ((0, 0), (0, 128 - o.shape[1])), mode="edge") for o in out]
    return np.stack(out).astype(np.float32)


@dataclass(frozen=True)
class DemoExport:
    name: str
    onnx: Path
    parity: dict  # validate_onnx's report


def export_demo(name: str, out_dir: str | Path) -> DemoExport:
    """``<out_dir>/<name>/fp32.onnx``, validated against PyTorch at batch 1 and 5 on real-ish inputs."""
    from ..onnx_export import onnx_from_module
    from ..validate import validate_onnx

    spec, module = SPECS[name], demo_module(name)
    path = Path(out_dir) / name / "fp32.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(demo_inputs(name, 2))
    metadata = {"facestyle.model": json.dumps(name), "facestyle.input_name": json.dumps(spec.inputs[0].name),
                "facestyle.output_name": json.dumps(spec.outputs[0].name),
                "facestyle.layout": json.dumps("NCDHW" if name == "conv3d-demo" else "NCL"),
                "facestyle.input_range": json.dumps([0.0, 1.0])}
    onnx_from_module(module, spec, (example,), path, metadata)
    data = demo_inputs(name, 6)
    feeds = [{spec.inputs[0].name: data[:1]}, {spec.inputs[0].name: data[1:]}]
    report = validate_onnx(path, module, spec, feeds)
    return DemoExport(name, path, report.to_json())


def drift(reference: np.ndarray, variant: np.ndarray) -> dict:
    """Max abs difference, and that relative to the reference's largest magnitude."""
    diff = np.abs(np.asarray(variant, np.float64) - np.asarray(reference, np.float64))
    scale = float(np.abs(reference).max()) or 1.0
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "relative": float(diff.max()) / scale}


def demo_variants(exported: DemoExport, measure_count: int = 8, calibration_count: int = 16) -> dict:
    """fp16 and int8 variants beside ``exported``'s fp32, each's drift from fp32 on inputs calibration never saw."""
    from facestyle.backends.onnxruntime import OnnxRuntimeBackend
    from facestyle.export.precision import FeedListReader, fp16_from_onnx, int8_from_onnx

    spec = SPECS[exported.name]
    input_name = spec.inputs[0].name
    calibration = demo_inputs(exported.name, calibration_count, start=100)
    reader = FeedListReader([{input_name: calibration[i : i + 4]} for i in range(0, len(calibration), 4)],
                            f"{calibration_count} {exported.name} inputs from scikit-image photos")
    folder = exported.onnx.parent
    paths = {"fp16": fp16_from_onnx(exported.onnx, folder / "fp16.onnx"),
             "int8": int8_from_onnx(exported.onnx, folder / "int8.onnx", reader)}
    feed = {input_name: demo_inputs(exported.name, measure_count)}
    with OnnxRuntimeBackend(exported.onnx) as backend:
        reference = backend.infer(feed)[spec.outputs[0].name]
    out = {}
    for precision, path in paths.items():
        with OnnxRuntimeBackend(path) as backend:
            out[precision] = {"onnx": str(path), **drift(reference, backend.infer(feed)[spec.outputs[0].name])}
    return out
