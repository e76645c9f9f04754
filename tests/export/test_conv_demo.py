"""Conv1d and Conv3d through the export path: spec, ONNX export, parity with PyTorch, the runtime backend, variants."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the export extra (torch) is not installed")

from facestyle.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402 (after importorskip)
from facestyle.export.models.conv_demo import (  # noqa: E402 (after importorskip)
    SPECS,
    demo_inputs,
    demo_module,
    demo_variants,
    drift,
    export_demo,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("conv-demos")
    return {name: export_demo(name, out) for name in SPECS}


@pytest.fixture(scope="module")
def variants(exported):
    return {name: demo_variants(e) for name, e in exported.items()}


def test_conv3d_is_the_seed_example(exported):
    """14x14x14 volume, 1 channel, 16 filters of 5x5x5 -> 10x10x10 x 16, in the runtime backend."""
    volumes = demo_inputs("conv3d-demo", 3, start=50)
    assert volumes.shape == (3, 1, 14, 14, 14) and 0 <= volumes.min() and volumes.max() <= 1 and volumes.std() > 0.05
    with OnnxRuntimeBackend(exported["conv3d-demo"].onnx) as backend:
        out = backend.infer({"volume": volumes})["features"]
        meta = backend.metadata
    assert out.shape == (3, 16, 10, 10, 10)
    assert meta["facestyle.model"] == '"conv3d-demo"' and meta["facestyle.layout"] == '"NCDHW"'
    weight = demo_module("conv3d-demo").conv.weight
    assert tuple(weight.shape) == (16, 1, 5, 5, 5)
    # one output by hand: the dot product of the first filter with the volume's first 5x5x5 corner, plus bias
    module = demo_module("conv3d-demo")
    by_hand = float((module.conv.weight[0, 0].detach().numpy() * volumes[0, 0, :5, :5, :5]).sum()
                    + float(module.conv.bias[0].detach()))
    assert out[0, 0, 0, 0, 0] == pytest.approx(by_hand, abs=1e-5)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_parity_with_pytorch(exported, name):
    report = exported[name].parity
    assert report["batches"] == [1, 5]
    assert report["outputs"]["features"]["max_abs_diff"] <= 1e-5
    # on inputs validation never used, through the runtime backend, at another batch size
    inputs = demo_inputs(name, 7, start=30)
    spec = SPECS[name]
    with OnnxRuntimeBackend(exported[name].onnx) as backend:
        got = backend.infer({spec.inputs[0].name: inputs})["features"]
    with torch.no_grad():
        want = demo_module(name)(torch.from_numpy(inputs)).numpy()
    assert got.shape == (7, *spec.outputs[0].shape[1:])
    assert np.abs(got - want).max() <= 1e-5


def test_conv1d_shapes_and_fields(exported):
    """The Conv1d net's receptive field from its ONNX graph: 7 then 7 + (5 - 1) * 2 = 15 samples, stride 2."""
    import onnx

    from facestyle.export.inspect.receptive import Field, receptive_fields

    fields = receptive_fields(onnx.load(str(exported["conv1d-demo"].onnx)))
    assert fields["features"] == Field((15,), (2,), (-7,))
    fields3 = receptive_fields(onnx.load(str(exported["conv3d-demo"].onnx)))
    assert fields3["features"] == Field((5, 5, 5), (1, 1, 1), (0, 0, 0))


def int8_outputs(exported, name: str, weight_range: str, tmp_path) -> tuple[np.ndarray, np.ndarray, float]:
    """(onnxruntime's fused int8 kernels, the same Q/DQ graph in exact arithmetic, the output's
    quantisation step) on 8 inputs calibration never saw, for an int8 variant with ``weight_range``."""
    import onnx
    from onnx import numpy_helper

    from facestyle.export.precision import FeedListReader, int8_from_onnx
    from facestyle.export.precision.measure import cpu_inference

    input_name = SPECS[name].inputs[0].name
    calibration = demo_inputs(name, 16, start=100)
    reader = FeedListReader([{input_name: calibration[i : i + 4]} for i in range(0, 16, 4)], "demo calibration")
    path = int8_from_onnx(exported[name].onnx, tmp_path / f"{weight_range}.onnx", reader, weight_range=weight_range)
    feed = {input_name: demo_inputs(name, 8)}
    model = onnx.load(str(path))
    last = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    step = float(next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == last.input[1]))
    return cpu_inference(path).run(None, feed)[0], cpu_inference(path, simulate=True).run(None, feed)[0], step


@pytest.mark.parametrize("name", sorted(SPECS))
def test_variants_drift_within_bounds(variants, name):
    """fp16 rounds each weight to 11 significant bits: ~2e-4 relative. int8: the quantised graph in
    exact arithmetic drifts ~1-2e-2 from fp32 on 8 inputs calibration never saw (the same figure on any
    CPU: float maths on the same quantised values), and onnxruntime's kernels stay within one output
    step (under 1.1e-2 of the largest output) of exact arithmetic on any CPU for the weight range that
    ``auto`` picks there (test_int8_kernels_match_exact_arithmetic): 5e-2 holds everywhere."""
    import onnx

    fp16, int8 = variants[name]["fp16"], variants[name]["int8"]
    assert 0 < fp16["relative"] < 2e-3
    assert 1e-3 < int8["relative"] < 5e-2  # really quantised, and still close
    assert int8["mean_abs"] < int8["max_abs"]
    ops = {n.op_type for n in onnx.load(int8["onnx"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert onnx.load(fp16["onnx"]).graph.initializer[0].data_type == onnx.TensorProto.FLOAT16


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("weight_range", ["reduced", "auto"])
def test_int8_kernels_match_exact_arithmetic(exported, name, weight_range, tmp_path):
    """7-bit weights never saturate onnxruntime's uint8 x int8 kernels (255 x 64 x 2 < 32767), and
    ``auto`` picks them wherever the CPU lacks VNNI: the kernels then compute the Q/DQ graph exactly,
    up to one rounding of the output (full-range weights on an AVX2 CPU: 12-32 steps off)."""
    fused, exact, step = int8_outputs(exported, name, weight_range, tmp_path)
    assert np.abs(fused - exact).max() <= step * 1.001


@pytest.mark.parametrize("name", sorted(SPECS))
def test_full_range_int8_saturates_exactly_where_facestyle_cpu_says(exported, name, tmp_path):
    """The runtime's warning rests on ``facestyle.cpu.u8s8_saturates``: full-range weights are exact on
    a CPU with VNNI (or not x86), and off by many output steps on an x86 CPU without it."""
    from facestyle.cpu import u8s8_saturates

    fused, exact, step = int8_outputs(exported, name, "full", tmp_path)
    steps_off = np.abs(fused - exact).max() / step
    assert steps_off > 4 if u8s8_saturates() else steps_off <= 1.001


def test_drift():
    figures = drift(np.array([1.0, -4.0]), np.array([1.5, -4.0]))
    assert figures == {"max_abs": 0.5, "mean_abs": 0.25, "relative": 0.125}
