"""The style transformer's variants: the shipped ones unchanged, edge2 without the edge net's grid, edge2 exports."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facestyle.export.style.transformer import EDGE, EDGE2, SIZES, StyleTransformer, TransformerSize  # noqa: E402 (after importorskip)
from facestyle.style.quality import grid_ratio  # noqa: E402 (after importorskip)


@pytest.fixture(scope="module")
def photo():
    from facestyle.export.sample_inputs import natural_images

    return natural_images([(240, 320)])[0]


def stylise(net, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32)))
    return out[0].permute(1, 2, 0).numpy()


def test_the_shipped_weights_still_load_strictly():
    from safetensors import safe_open
    from safetensors.torch import load_file

    from facestyle.export.style.shipped import WEIGHTS_DIR, shipped_styles

    for style in shipped_styles():
        path = str(WEIGHTS_DIR / f"{style}.safetensors")
        with safe_open(path, framework="pt") as f:
            variant = f.metadata()["variant"]
        state = {k: v.float() for k, v in load_file(path).items()}
        StyleTransformer(SIZES[variant]).load_state_dict(state, strict=True)  # raises on a missing or extra key


def test_variants_and_parameter_counts():
    assert sorted(SIZES) == ["edge", "edge2", "standard"]
    counts = {name: sum(p.numel() for p in StyleTransformer(size).parameters()) for name, size in SIZES.items()}
    assert counts == {"standard": 1_679_235, "edge": 269_763, "edge2": 272_115}
    assert EDGE2.multiple == EDGE.multiple == 8
    with pytest.raises(ValueError, match="stem_stride 2"):
        StyleTransformer(TransformerSize((8, 16, 32), 1, 3, full_res_channels=8))


@pytest.mark.parametrize("shape", [(97, 131), (64, 64), (33, 250)])
def test_edge2_returns_the_input_size(shape):
    with torch.no_grad():
        out = StyleTransformer(EDGE2).eval()(torch.rand(1, 3, *shape) * 255)
    assert out.shape == (1, 3, *shape) and 0 <= float(out.min()) and float(out.max()) <= 255


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edge2_has_no_grid_even_untrained(photo, seed):
    # the edge net's grid comes from its shape, not its training: it shows with random weights already
    ratios = {}
    for name in ("edge", "edge2"):
        torch.manual_seed(seed)
        ratios[name] = grid_ratio(stylise(StyleTransformer(SIZES[name]), photo))
    assert ratios["edge"] > 2.0 and ratios["edge2"] < 1.3, ratios  # measured: edge 2.1-2.7, edge2 1.04-1.15


def test_edge2_exports_to_onnx_with_linear_resize_and_matches_torch(photo, tmp_path):
    import onnx
    import onnxruntime as ort

    from facestyle.export.onnx_export import onnx_from_module
    from facestyle.export.spec import STYLE_TRANSFORMER

    torch.manual_seed(0)
    net = StyleTransformer(EDGE2).eval()
    path = onnx_from_module(net, STYLE_TRANSFORMER, (torch.rand(1, 3, 240, 320) * 255,), tmp_path / "edge2.onnx", {})
    model = onnx.load(str(path))
    assert model.opset_import[0].version == STYLE_TRANSFORMER.opset
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 3
    for node in resizes:
        attrs = {a.name: a.s.decode() for a in node.attribute if a.type == onnx.AttributeProto.STRING}
        assert attrs["mode"] == "linear" and attrs.get("coordinate_transformation_mode") == "half_pixel", attrs
    inference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for image in (photo, photo[:97, :131]):  # the traced size and an odd one
        x = image.transpose(2, 0, 1)[None].astype(np.float32)
        got = inference.run(None, {"image": x})[0]
        assert got.shape == x.shape
        np.testing.assert_allclose(got, net(torch.from_numpy(x)).detach().numpy(), atol=STYLE_TRANSFORMER.atol * 10)


def test_edge2_weights_go_through_the_style_recipe(tmp_path):
    import json
    from dataclasses import replace

    from safetensors.torch import save_file

    from facestyle.export.recipes.style import prepare_style
    from facestyle.export.spec import STYLE_TRANSFORMER

    torch.manual_seed(0)
    net = StyleTransformer(EDGE2)
    weights = tmp_path / "test_style.safetensors"
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(weights), metadata={"variant": "edge2"})
    (tmp_path / "test_style.card.json").write_text(json.dumps({"style": "test_style", "variant": "edge2", "steps": 1}))
    prepared = prepare_style(replace(STYLE_TRANSFORMER, name="style-test_style"), weights, "0" * 64)
    assert prepared.contract.variant == "edge2" and prepared.contract.size_multiple == 8
    assert prepared.manifest_extra["parameters"] == 272_115
    assert prepared.contract.card == {"steps": 1}
