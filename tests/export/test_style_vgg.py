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
    session = onnxruntime.InferenceSession(str(cut), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: caffe})[0]
    expected = expected if expected.shape[1] == 512 else expected.transpose(0, 3, 1, 2)

    with torch.no_grad():
        ours = vgg16_from_onnx(source)(torch.from_numpy(rgb.transpose(2, 0, 1)[None].copy()))
    got = ours["relu4_3"].numpy()
    assert got.shape == (1, 512, 30, 30)
    # measured: 7.6e-3 on activations up to 3.6e3 (float32 accumulation order)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    assert [tuple(ours[k].shape[1:2]) for k in ("relu1_2", "relu2_2", "relu3_3")] == [(64,), (128,), (256,)]
