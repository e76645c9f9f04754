"""The VGG16 loss network against onnxruntime running the very ONNX file its weights come from."""

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")


def test_features_match_onnxruntime_on_a_real_photo(tmp_path):
    import onnx
    import onnxruntime
    from PIL import Image

    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.export.style.vgg import CAFFE_MEAN_BGR, locate_vgg16_onnx, vgg16_from_onnx
    from facestyle.images import load_image

    source = locate_vgg16_onnx()
    model = onnx.load(str(source))
    relu4_3 = next(n.output[0] for n in model.graph.node if n.op_type == "Relu" and "block4_conv3" in n.name)
    cut = tmp_path / "vgg_to_relu4_3.onnx"
    onnx.utils.extract_model(str(source), str(cut), [model.graph.input[0].name], [relu4_3])

    rgb = np.asarray(Image.fromarray(load_image(skimage_data_dir() / "astronaut.png")).resize((240, 240)), np.float32)
    caffe = (rgb[..., ::-1] - np.array(CAFFE_MEAN_BGR, np.float32))[None]  # the file's input: NHWC, BGR - mean
    inference = onnxruntime.InferenceSession(str(cut), providers=["CPUExecutionProvider"])
    expected = inference.run(None, {inference.get_inputs()[0].name: caffe})[0]
    expected = expected if expected.shape[1] == 512 else expected.transpose(0, 3, 1, 2)

    with torch.no_grad():
        ours = vgg16_from_onnx(source)(torch.from_numpy(rgb.transpose(2, 0, 1)[None].copy()))
    got = ours["relu4_3"].numpy()
    assert got.shape == (1, 512, 30, 30)
    # measured: 7.6e-3 on activations up to 3.6e3 (float32 accumulation order)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    assert [tuple(ours[k].shape[1:2]) for k in ("relu1_2", "relu2_2", "relu3_3")] == [(64,), (128,), (256,)]


def test_gatys_optimisation_lowers_the_style_cost_on_real_photos():
    from PIL import Image

    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.export.style.optimize import optimize_image
    from facestyle.export.style.vgg import vgg16_from_onnx
    from facestyle.images import load_image

    def small(name):
        return np.asarray(Image.fromarray(load_image(skimage_data_dir() / name)).resize((48, 48)))

    content, style = small("astronaut.png"), small("coffee.png")
    out, log = optimize_image(vgg16_from_onnx(), content, style, steps=15)
    assert out.shape == content.shape and out.dtype == np.uint8
    assert log[0]["content"] == 0.0  # starts from the content image
    assert log[-1]["style"] < 0.5 * log[0]["style"]
    assert log[-1]["total"] < log[0]["total"]


def test_style_optimize_cli_writes_the_image(tmp_path, capsys):
    import json

    from PIL import Image

    from facestyle.cli import main
    from facestyle.export.sample_inputs import skimage_data_dir

    out = tmp_path / "out.png"
    data = skimage_data_dir()
    assert main(["style-optimize", str(data / "astronaut.png"), str(data / "coffee.png"), str(out),
                 "--steps", "3", "--size", "40", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert Image.open(out).size == tuple(report["size"]) == (40, 40)
    assert main(["style-optimize", str(data / "astronaut.png"), str(tmp_path / "none.png"), str(out), "--quiet"]) == 2
    assert "none.png: no such file" in capsys.readouterr().err
