"""A style trained with ``train-style`` deploys: ``facestyle build --style-weights RUN_DIR`` -> ONNX with parity,
manifest, precision variants; ``styles`` lists it and ``stylize`` runs it like a shipped one."""

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from facestyle.cli import main  # noqa: E402 (after importorskip)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from PIL import Image

    from facestyle.export.sample_inputs import natural_images, skimage_data_dir

    root = tmp_path_factory.mktemp("user-style")
    content = root / "content"
    content.mkdir()
    for name in ("astronaut.png", "coffee.png", "chelsea.png"):
        shutil.copy(skimage_data_dir() / name, content / name)
    Image.fromarray(natural_images([(48, 64)] * 7)[6]).save(root / "my_motorbike.png")
    run = root / "run"
    assert main(["train-style", "--style", str(root / "my_motorbike.png"), "--content-dir", str(content), "--out", str(run),
                 "--size", "32", "--batch", "1", "--steps", "2", "--quiet"]) == 0
    return run


def test_build_exports_a_user_trained_style_with_parity_and_variants(trained_run, tmp_path, capsys):
    engines = tmp_path / "engines"
    capsys.readouterr()
    assert main(["build", "--out", str(engines), "--style-weights", str(trained_run), "--precision", "fp32,fp16"]) == 0
    table = capsys.readouterr().out
    assert "style-my_motorbike" in table and "face-embed" not in table  # only the user's style is built
    manifest = json.loads((engines / "style-my_motorbike" / "fp32.manifest.json").read_text())
    assert manifest["kind"] == "style" and manifest["contract"]["variant"] == "edge2"
    assert manifest["contract"]["card"]["steps"] == 2
    assert manifest["source"]["license"].startswith("weights: trained by the user")
    parity = manifest["parity"]["outputs"]["stylized"]
    assert parity["max_abs_diff"] <= parity["atol"]
    assert (engines / "style-my_motorbike" / "fp16.onnx").is_file()

    assert main(["styles", "--engines", str(engines), "--json"]) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed["my_motorbike"]["precisions"] == ["fp16", "fp32"]

    from facestyle.style.stylizer import Stylizer

    photo = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    out = Stylizer.from_engines("my_motorbike", engines).stylize(photo)
    assert out.shape == photo.shape and out.dtype == np.uint8


def test_a_second_build_of_the_same_weights_is_up_to_date(trained_run, tmp_path, capsys):
    engines = tmp_path / "engines"
    args = ["build", "--out", str(engines), "--style-weights", str(trained_run / "my_motorbike.safetensors")]
    assert main(args) == 0 and main(args) == 0
    assert "Nothing changed" in capsys.readouterr().out


def test_style_weights_that_cannot_deploy_are_refused_by_name(trained_run, tmp_path, capsys):
    from facestyle.errors import BadInputError
    from facestyle.export.build import build

    with pytest.raises(BadInputError, match="expected one <style>.safetensors with its .card.json .*found none"):
        build(tmp_path / "e", style_weights=(tmp_path,))
    with pytest.raises(BadInputError, match="expected a train-style run folder or its <style>.safetensors"):
        build(tmp_path / "e", style_weights=(trained_run / "checkpoint.pt",))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(trained_run / "my_motorbike.safetensors", shipped / "wave.safetensors")
    card = json.loads((trained_run / "my_motorbike.card.json").read_text())
    (shipped / "wave.card.json").write_text(json.dumps({**card, "style": "wave"}))
    with pytest.raises(BadInputError, match="'wave' is a shipped style; train it under another --name"):
        build(tmp_path / "e", style_weights=(shipped,))
    assert main(["build", "--out", str(tmp_path / "e"), "--style-weights", str(tmp_path / "nothing-here")]) == 2
    assert "--style-weights" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
