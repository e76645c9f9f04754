"""`facestyle build --precision` does not print onnxruntime's "Axis 1 is out-of-range" warnings: the QDQ
quantiser logs one per 1-D weight (an InstanceNormalization's scale) it falls back to per-tensor for."""

import logging

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")


def _instance_norm_model(path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(np.ones(4, np.float32), "S"), numpy_helper.from_array(np.zeros(4, np.float32), "B")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("InstanceNormalization", ["c", "S", "B"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _quantise(src, dst):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.feeds = iter([{"x": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8)


def test_the_per_channel_fallback_warning_is_dropped_and_logging_restored(tmp_path, caplog):
    from facestyle.export.precision.int8 import quiet_per_channel_fallback

    src = tmp_path / "tiny.onnx"
    _instance_norm_model(src)
    caplog.set_level(logging.WARNING)
    _quantise(src, tmp_path / "loud.onnx")
    assert "is out-of-range for weight 'S'" in caplog.text  # the warning is real
    caplog.clear()
    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    with quiet_per_channel_fallback():
        _quantise(src, tmp_path / "quiet.onnx")
        logging.warning("another warning")
    assert "out-of-range" not in caplog.text and "another warning" in caplog.text  # only that one is dropped
    assert root.handlers == handlers and root.filters == filters
    assert onnx.load(tmp_path / "quiet.onnx").graph.node  # and the model is still quantised
