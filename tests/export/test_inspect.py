"""facestyle inspect: receptive fields from the graph, top-9 patches on real photos, the grid, the CLI's errors."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import FACES, REPO, import_blocker, require_shared

onnx = pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")

from onnx import TensorProto, helper  # noqa: E402 (after importorskip)

from facestyle.errors import BadInputError  # noqa: E402 (after importorskip)
from facestyle.export.inspect.activations import LayerProbe, expose, parse_units  # noqa: E402 (after importorskip)
from facestyle.export.inspect.grid import cell_size, draw_grid, grid_size  # noqa: E402 (after importorskip)
from facestyle.export.inspect.receptive import Field, layer_names, receptive_fields  # noqa: E402 (after importorskip)
from facestyle.export.inspect.run import model_layers, pick_layer, top9  # noqa: E402 (after importorskip)
from facestyle.export.inspect.targets import image_files, resolve_target  # noqa: E402 (after importorskip)


def _hand_graph():
    """Pad(2 top, 3 left) -> Conv 3x3 p1 -> Relu -> MaxPool 2 s2 -> Conv 3x1 dilation 2 stride 2 -> Relu
    -> Add with a 1x1 conv of the pool (a residual) -> GlobalAveragePool. All weights positive."""
    ones = lambda name, shape: helper.make_tensor(name, TensorProto.FLOAT, shape, [0.1] * int(np.prod(shape)))
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["padded"], mode="constant"),
        helper.make_node("Conv", ["padded", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], kernel_shape=[3, 1], strides=[2, 2], dilations=[2, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["p1", "w3"], ["c3"], kernel_shape=[1, 1], strides=[2, 2]),
        helper.make_node("Slice", ["c3", "starts", "ends", "axes"], ["c3s"]),
        helper.make_node("Add", ["r2", "c3s"], ["sum"]),
        helper.make_node("GlobalAveragePool", ["sum"], ["g"]),
    ]
    inits = [
        helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 2, 3, 0, 0, 2, 3]),
        ones("w1", [2, 1, 3, 3]), ones("w2", [2, 2, 3, 1]), ones("w3", [2, 2, 1, 1]),
        helper.make_tensor("starts", TensorProto.INT64, [2], [0, 0]),
        helper.make_tensor("ends", TensorProto.INT64, [2], [5, 100]),
        helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
    ]
    graph = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 24, 24])],
                              [helper.make_tensor_value_info("g", TensorProto.FLOAT, [None, 2, 1, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_receptive_fields_of_a_hand_made_graph_are_the_known_answer():
    fields = receptive_fields(_hand_graph())
    assert fields["padded"] == Field((1, 1), (1, 1), (-2, -3))
    assert fields["r1"] == Field((3, 3), (1, 1), (-3, -4))
    assert fields["p1"] == Field((4, 4), (2, 2), (-3, -4))
    # kernel 3x1 with dilation 2 on rows: effective 5 rows, 1 column; stride 2 on a stride-2 grid
    assert fields["r2"] == Field((4 + 4 * 2, 4), (4, 4), (-3, -4))
    assert fields["c3s"] == Field((4, 4), (4, 4), (-3, -4))
    assert fields["sum"] == Field((12, 4), (4, 4), (-3, -4))  # the union of both branches
    assert "g" not in fields  # global pooling ends the field
    assert layer_names(_hand_graph(), fields) == ["r1", "p1", "r2"]


def test_receptive_field_box_is_exactly_the_pixels_that_move_the_unit(tmp_path):
    """Brute force: raise one input pixel at a time; the units of r2 that change are those whose box holds it."""
    from facestyle.backends.onnxruntime import OnnxRuntimeBackend

    model = _hand_graph()
    fields = receptive_fields(model)
    path = tmp_path / "hand.onnx"
    path.write_bytes(expose(model, "r2", "x").SerializeToString())
    base = np.full((1, 1, 24, 24), 0.5, np.float32)
    batch = np.repeat(base, 24 * 24, axis=0)
    batch[np.arange(24 * 24), 0, np.arange(24 * 24) // 24, np.arange(24 * 24) % 24] += 100.0
    with OnnxRuntimeBackend(path) as backend:
        ref = backend.infer({"x": base})["r2"][0, 0]
        moved = backend.infer({"x": batch})["r2"][:, 0] != ref  # (pixels, rows, cols)
    for unit in [(0, 0), (1, 2), (2, 5)]:
        (y0, y1), (x0, x1) = fields["r2"].box(unit)
        expected = np.zeros((24, 24), bool)
        expected[max(int(y0), 0) : int(y1), max(int(x0), 0) : int(x1)] = True
        assert np.array_equal(moved[:, unit[0], unit[1]].reshape(24, 24), expected), unit


def test_receptive_fields_of_real_models():
    """VGG16's published figures (3, 5, 6 ... 212 px); the 1-D and 3-D cases are in test_conv_demo."""
    from facestyle.export.style.vgg import locate_vgg16_onnx

    target = resolve_target("vgg16", None)
    sizes = [layer.field.size[0] for layer in model_layers(target)]
    assert sizes == [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]
    assert target.onnx == locate_vgg16_onnx()


def test_parse_units():
    assert parse_units("0-3,8") == [0, 1, 2, 3, 8]
    with pytest.raises(BadInputError, match=r"--units '3-1'"):
        parse_units("3-1")
    with pytest.raises(BadInputError, match=r"has 64 units \(0-63\)"):
        parse_units("60-70", 64)


def _check_against_crops(target, layer, items, tops):
    """Each top patch's value is the unit's maximum over its input, and the unit recomputed on a crop
    holding just its field (where the field fits in the input) gives the same value."""
    checked = 0
    with LayerProbe(target.onnx, layer.name, target.image_tensor) as probe:
        for top in tops:
            values = [p.value for p in top.patches]
            assert values == sorted(values, reverse=True)
            for patch in top.patches[:3]:
                tensor = items[patch.item].tensor
                full = probe(tensor)[0, top.unit]
                assert full[patch.position] == pytest.approx(patch.value, rel=1e-6)
                (y0, y1), (x0, x1) = patch.box
                if y0 < 0 or x0 < 0 or y1 > tensor.shape[2] or x1 > tensor.shape[3]:
                    continue
                sy, sx = (int(layer.field.stride[a]) for a in (0, 1))
                cy, cx = int(y0) // sy * sy, int(x0) // sx * sx  # crop origin on the unit grid
                crop = np.ascontiguousarray(tensor[:, :, cy : int(y1) + sy, cx : int(x1) + sx])
                local = probe(crop)[0, top.unit][patch.position[0] - cy // sy, patch.position[1] - cx // sx]
                assert local == pytest.approx(patch.value, rel=1e-4, abs=1e-4)
                checked += 1
    assert checked >= 3


def test_top9_on_real_photos_vgg16(tmp_path):
    """VGG16's block2_conv2 (14 px field) over scikit-image photos."""
    from facestyle.export.sample_inputs import skimage_data_dir

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "camera.png"):
        (folder / name).write_bytes((skimage_data_dir() / name).read_bytes())
    target = resolve_target("vgg16", None)
    layer = pick_layer(model_layers(target), "functional_1/block2_conv2_1/Relu:0")
    assert layer.channels == 128 and layer.field.size == (14, 14)
    items, tops = top9(target, layer, "0-3", image_files(folder), show_progress=False)
    assert len(items) == 6 and [t.unit for t in tops] == [0, 1, 2, 3]
    assert all(len(t.patches) == 6 and len({p.item for p in t.patches}) == 6 for t in tops)  # one patch per photo
    _check_against_crops(target, layer, items, tops)


def test_top9_on_real_faces_embedding(engines_dir):
    """The face embedding's relu_3 (35 px field) over chips the runtime pipeline makes from real photos."""
    photos = sorted(p for p in require_shared(FACES).rglob("*.jpg"))[:6]
    target = resolve_target("face-embed", engines_dir)
    layer = pick_layer(model_layers(target), "relu_3")
    assert layer.field == Field((35, 35), (4, 4), (-12, -12))
    items, tops = top9(target, layer, "0-5", photos, show_progress=False)
    assert len(items) >= 6 and all(item.view.shape == (150, 150, 3) for item in items)
    assert all(len(t.patches) == 9 for t in tops)
    _check_against_crops(target, layer, items, tops)


def test_grid_size_and_deeper_layers_draw_larger(tmp_path):
    from facestyle.export.inspect.activations import Item, Patch, UnitTop
    from facestyle.export.inspect.grid import save_grid
    from facestyle.images import load_image

    view = np.zeros((40, 40, 3), np.uint8)
    items = [Item("a", view, view[None].transpose(0, 3, 1, 2).astype(np.float32))]
    tops = [UnitTop(u, [Patch(0, "a", (1, 1), 1.5, ((-2.0, 10.0), (30.0, 42.0)))] * 9) for u in range(4)]
    image = draw_grid(tops, items, "title", cell=60)
    assert image.size == grid_size(4, 60) == (64 + 9 * 64 + 4, 20 + 4 * 78 + 4)
    assert load_image(save_grid(image, tmp_path / "g.png")).shape == (grid_size(4, 60)[1], grid_size(4, 60)[0], 3)
    assert cell_size(3) < cell_size(60) < cell_size(212)


def _run_cli(argv):
    from facestyle.cli.inspect import register

    parser = argparse.ArgumentParser(prog="facestyle")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["inspect", *argv])
    return args.func(args)


def test_cli_error_paths(tmp_path, capsys):
    with pytest.raises(BadInputError, match=r"--images DIR is needed"):
        _run_cli(["--model", "vgg16", "--out", str(tmp_path / "g.png")])
    with pytest.raises(BadInputError, match=r"--images .*nope: not a folder"):
        _run_cli(["--model", "vgg16", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "g.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match=r"no images"):
        _run_cli(["--model", "vgg16", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "g.png")])
    with pytest.raises(BadInputError, match=r"--out grid.png is needed"):
        _run_cli(["--model", "vgg16", "--images", str(tmp_path)])
    with pytest.raises(BadInputError, match=r"--model mona_lisa: no .*style-mona_lisa"):
        _run_cli(["--model", "mona_lisa", "--engines", str(tmp_path), "--list-layers"])
    with pytest.raises(BadInputError, match=r"--precision int8: vgg16 is inspected in fp32 or fp16"):
        _run_cli(["--model", "vgg16", "--precision", "int8", "--list-layers"])
    assert _run_cli(["--model", "vgg16", "--list-layers"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 18 and "field 212x212 px, stride 32x32" in listed[-1]


def test_cli_without_onnx_says_how_to_install():
    code = import_blocker("onnx") + (
        "import argparse\n"
        "from facestyle.cli.inspect import register\n"
        "from facestyle.errors import MissingDependencyError\n"
        "parser = argparse.ArgumentParser()\n"
        "register(parser.add_subparsers())\n"
        "args = parser.parse_args(['inspect', '--model', 'vgg16', '--list-layers'])\n"
        "try:\n    args.func(args)\n"
        "except MissingDependencyError as exc:\n    print('MISSING', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    # (the blocker's ImportError names no module; a real absent package shows "onnx is missing")
    assert re.search(r"MISSING `facestyle inspect` needs the export extra \(.* is missing\): pip install 'facestyle\[export\]'",
                     done.stdout), done.stdout + done.stderr


def test_several_patches_from_one_photo_and_fp16_overlap(engines_dir, tmp_path):
    """One public-domain face (the astronaut) gives nine patches per unit with --per-image 9, each more
    than half a field from the others; the fp16 variant picks the same patches."""
    import shutil

    from facestyle.export.inspect import inspect_model
    from facestyle.export.precision import build_variants
    from facestyle.export.sample_inputs import skimage_data_dir

    engines = tmp_path / "engines"
    for model in ("face-embed", "face-detect", "landmarks-5"):
        shutil.copytree(engines_dir / model, engines / model)
    build_variants(engines, "face-embed", ["fp16"], measure=False)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(skimage_data_dir() / "astronaut.png", photos)
    result = inspect_model("face-embed", photos, tmp_path / "grid.jpg", layer="relu_1", units="0-3", precision="fp16",
                           engines=engines, per_input=9, show_progress=False)
    assert result["inputs"] == 1 and result["layer"]["field_size"] == [19.0, 19.0]
    for unit in result["units"]:
        positions = [tuple(p["position"]) for p in unit["patches"]]
        assert len(positions) == 9
        # pairwise more than half a field (9.5 px = 2.4 units at stride 4) apart on some axis
        assert all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) * 4 > 19 / 2 for i, a in enumerate(positions) for b in positions[:i])
    assert result["overlap_with_fp32"]["patch_overlap"] >= 0.9
    assert (tmp_path / "grid.jpg").stat().st_size > 10_000


def test_vgg16_fp16_is_entered_past_its_input_cast():
    target = resolve_target("vgg16", None, precision="fp16")
    layers = model_layers(target)
    assert len(layers) == 18 and layers[-1].field.size == (212, 212)
    assert target.image_tensor != "input"  # the NHWC -> NCHW Transpose after the fp16 input Cast


def test_detector_and_style_photos_resized_by_their_contracts(engines_dir, style_engines, tmp_path):
    """Photos resized (longer side --size; a style's to its size multiple), default layer the middle one."""
    from facestyle.export.inspect import inspect_model
    from facestyle.export.sample_inputs import skimage_data_dir

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        (photos / name).write_bytes((skimage_data_dir() / name).read_bytes())
    detect = inspect_model("face-detect", photos, None, units="0-1", engines=engines_dir, size=200, show_progress=False)
    assert detect["layer"]["name"] == "relu_3" and detect["layer"]["field_size"] == [61.0, 61.0]
    style_dir, style = style_engines
    target = resolve_target(style, style_dir, size=250)
    items = list(target.items(image_files(photos)))
    multiple = target._contract().size_multiple
    assert all(max(i.view.shape[:2]) in (248, 256) and i.view.shape[0] % multiple == i.view.shape[1] % multiple == 0
               for i in items)
    styled = inspect_model(style, photos, tmp_path / "s.png", units="0-1", engines=style_dir, size=250, show_progress=False)
    assert styled["layer"]["exact"] is False  # InstanceNorm: statistics over the whole image
    assert len(styled["units"][0]["patches"]) == 3


def test_facestyle_inspect_command(tmp_path, capsys):
    """Through `facestyle` itself: a FacestyleError is exit code 2 and one line naming the input."""
    from facestyle.cli import main

    assert main(["inspect", "--model", "vgg16", "--units", "9-3", "--images", str(tmp_path), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"facestyle inspect: error: --images {tmp_path}: no images (.jpg, .jpeg, .png, .bmp, .webp) in it"]
    from facestyle.export.sample_inputs import skimage_data_dir

    (tmp_path / "a.png").write_bytes((skimage_data_dir() / "astronaut.png").read_bytes())
    assert main(["inspect", "--model", "vgg16", "--units", "9-3", "--images", str(tmp_path), "--json"]) == 2
    assert "--units '9-3': expected indices or ranges" in capsys.readouterr().err
    assert main(["inspect", "--model", "vgg16", "--layer", "nope", "--images", str(tmp_path), "--json"]) == 2
    assert "--layer 'nope': not a layer of this model (see --list-layers)" in capsys.readouterr().err
    assert main(["inspect", "--model", "vgg16", "--units", "0-1", "--images", str(tmp_path), "--json",
                 "--layer", "functional_1/block1_conv1_1/Relu:0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["layer"]["field_size"] == [3.0, 3.0] and len(result["units"]) == 2
    assert len(result["units"][0]["patches"]) == 1 and result["units"][0]["patches"][0]["image"] == "a.png"
