import pytest
import torch

from facestyle.export.style.costs import content_cost, gram_matrix, style_cost, style_layer_cost, total_variation
from facestyle.export.style.transformer import EDGE, STANDARD, StyleTransformer


def test_gram_matrix_by_hand():
    a = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # N=1, C=2, H=1, W=2
    torch.testing.assert_close(gram_matrix(a), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]))


def test_content_cost_by_hand():
    c = torch.zeros(2, 1, 2, 2)
    g = torch.ones(2, 1, 2, 2)
    g[1] *= 2
    # per image 1/2 * (4 * 1) = 2 and 1/2 * (4 * 4) = 8; batch mean 5
    assert content_cost(c, g).item() == pytest.approx(5.0)


def test_style_layer_cost_by_hand():
    s = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    g = torch.zeros_like(s)
    # ||G(S)||^2 = 25 + 121 + 121 + 625 = 892, divided by (2 * 2 * 1 * 2)^2 = 64
    assert style_layer_cost(s, g).item() == pytest.approx(892 / 64)
    assert style_layer_cost(s, s).item() == 0.0


def test_style_cost_weights_layers_and_names_missing_ones():
    s = {"a": torch.ones(1, 1, 1, 2), "b": torch.ones(1, 2, 1, 1)}
    g = {"a": torch.zeros(1, 1, 1, 2), "b": torch.zeros(1, 2, 1, 1)}
    # layer a: G = [[2]] -> 4 / (2*1*1*2)^2 = 0.25 ; layer b: G = ones(2,2) -> 4 / (2*2*1*1)^2 = 0.25
    assert style_cost(s, g, {"a": 1.0, "b": 3.0}).item() == pytest.approx(0.25 + 0.75)
    with pytest.raises(KeyError, match=r"style layers \['c'\] are missing"):
        style_cost(s, g, {"c": 1.0})


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical: (2-0)^2 + (4-1)^2 = 13 ; horizontal: (1-0)^2 + (4-2)^2 = 5
    assert total_variation(image).item() == pytest.approx(18.0)


@pytest.mark.parametrize("size", [STANDARD, EDGE])
def test_transformer_keeps_any_size(size):
    torch.manual_seed(0)
    net = StyleTransformer(size).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 33, 51) * 255)
    assert out.shape == (1, 3, 33, 51) and 0 <= out.min() and out.max() <= 255
    params = sum(p.numel() for p in net.parameters())
    assert params == {STANDARD: 1_679_235, EDGE: 269_763}[size]


def test_transformer_exports_with_dynamic_size_and_keeps_odd_sizes(tmp_path):
    import numpy as np
    import onnxruntime
    from PIL import Image

    from facestyle.export.onnx_export import onnx_from_module
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.export.spec import STYLE_TRANSFORMER
    from facestyle.export.validate import validate_onnx
    from facestyle.images import load_image

    torch.manual_seed(0)
    net = StyleTransformer(EDGE).eval()  # untrained: this checks the graph, not a style
    path = onnx_from_module(net, STYLE_TRANSFORMER, (torch.rand(1, 3, 64, 96) * 255,), tmp_path / "edge.onnx", {})
    photo = np.asarray(Image.fromarray(load_image(skimage_data_dir() / "coffee.png")).resize((131, 97)), np.float32)
    feeds = [{"image": photo.transpose(2, 0, 1)[None].copy()}, {"image": np.full((1, 3, 33, 50), 128, np.float32)}]
    report = validate_onnx(path, net, STYLE_TRANSFORMER, feeds)
    assert report.outputs["stylized"]["max_abs_diff"] <= 1e-2
    inference = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert inference.run(None, feeds[0])[0].shape == (1, 3, 97, 131)
