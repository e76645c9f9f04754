import numpy as np
import onnx
import pytest
import torch

from facestyle.errors import ParityError
from facestyle.export.onnx_export import onnx_from_module
from facestyle.export.spec import ModelSpec, TensorSpec
from facestyle.export.validate import compare_outputs, validate_onnx


def test_comparator_reports_worst_element_and_passing_tolerance():
    expected = {"y": np.array([[1.0, 2.0], [3.0, 4.0]])}
    actual = {"y": np.array([[1.0, 2.5], [3.0, 3.9]])}
    (cmp,) = compare_outputs(expected, actual, atol=0.1, rtol=0.1)
    assert cmp.worst_index == (0, 1) and cmp.max_abs_diff == pytest.approx(0.5)
    assert (cmp.expected_value, cmp.actual_value) == (2.0, 2.5)
    # |diff| - rtol*|ref|: 0.5 - 0.2 = 0.3 is the atol that would have passed.
    assert cmp.required_atol == pytest.approx(0.3)
    assert not cmp.passed
    assert "would pass with atol=0.3" in cmp.describe()


def test_comparator_rejects_shape_mismatch():
    with pytest.raises(ParityError, match=r"output 'y': shape \[3\], reference \[2\]"):
        compare_outputs({"y": np.zeros(2)}, {"y": np.zeros(3)}, 1e-5, 0)


class TwoHeads(torch.nn.Module):
    def __init__(self, shift=0.0):
        super().__init__()
        self.shift = shift

    def forward(self, x):
        return x * 2 + self.shift, x.sum(dim=1) - self.shift


SPEC = ModelSpec(
    name="two-heads",
    inputs=(TensorSpec("x", ("batch", 4)),),
    outputs=(TensorSpec("double", ("batch", 4)), TensorSpec("total", ("batch",))),
    opset=18,
    atol=1e-6,
    rtol=0.0,
)


@pytest.fixture(scope="module")
def two_heads_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "two.onnx"
    return onnx_from_module(TwoHeads(), SPEC, (torch.ones(3, 4),), path, {"facestyle.model": '"two-heads"'})


def test_export_writes_metadata_opset_and_dynamic_batch(two_heads_onnx):
    model = onnx.load(two_heads_onnx)
    assert {p.key: p.value for p in model.metadata_props} == {"facestyle.model": '"two-heads"'}
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value
    assert not list(two_heads_onnx.parent.glob("*.data"))  # single file


def test_validation_passes_on_faithful_export(two_heads_onnx):
    feeds = [{"x": np.random.default_rng(0).normal(size=(b, 4)).astype(np.float32)} for b in (1, 5)]
    report = validate_onnx(two_heads_onnx, TwoHeads(), SPEC, feeds)
    assert report.batches == [1, 5]
    assert set(report.outputs) == {"double", "total"}
    assert all(o["max_abs_diff"] <= 1e-6 for o in report.outputs.values())


def test_validation_lists_every_failed_output(two_heads_onnx):
    feeds = [{"x": np.ones((2, 4), np.float32)}]
    with pytest.raises(ParityError, match=r"2 output\(s\) differ.*double: max abs diff 0\.01.*total: max abs diff 0\.01") as info:
        validate_onnx(two_heads_onnx, TwoHeads(shift=0.01), SPEC, feeds)
    assert [f.name for f in info.value.failures] == ["double", "total"]
