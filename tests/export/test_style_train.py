"""train-style: losses fall, checkpoints resume exactly, logs and samples are written, weights ship."""

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facestyle.errors import BadInputError, ModelFormatError  # noqa: E402 (after importorskip)
from facestyle.export.style.train import StyleTrainer, TrainConfig, content_files  # noqa: E402 (after importorskip)


@pytest.fixture(scope="module")
def vgg():
    from facestyle.export.style.vgg import vgg16_from_onnx

    return vgg16_from_onnx()


@pytest.fixture(scope="module")
def content_dir(tmp_path_factory):
    from facestyle.export.sample_inputs import skimage_data_dir

    folder = tmp_path_factory.mktemp("content")
    for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"):
        shutil.copy(skimage_data_dir() / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def style_image():
    from facestyle.export.sample_inputs import natural_images

    return natural_images([(48, 64)] * 7)[6]  # a motorcycle photo stands in for a painting: any image is a style


def tiny(**changes) -> TrainConfig:
    return TrainConfig(**{"size": 32, "batch": 2, "steps": 6, "checkpoint_every": 2, "sample_every": 3, "lr": 1e-2, **changes})


def trainer(vgg, style_image, content_dir, out, **changes) -> StyleTrainer:
    files = content_files(content_dir)
    return StyleTrainer(vgg, style_image, files, out, tiny(**changes), sample_image=np.full((24, 40, 3), 128, np.uint8))


def test_a_run_writes_its_log_checkpoint_samples_and_weights(vgg, style_image, content_dir, tmp_path):
    from facestyle.export.style.shipped import read_card, style_module_from_safetensors

    t = trainer(vgg, style_image, content_dir, tmp_path / "run")
    last = t.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "loss.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4, 5, 6] and last["step"] == 6
    assert set(log[0]) >= {"total", "content", "style", "tv", "seconds"}
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step-000003.png", "step-000006.png"]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 6

    weights, card = t.export_weights("motorcycle", "test CPU")
    module, variant = style_module_from_safetensors(weights)
    assert variant == "edge2" and read_card(weights)["steps"] == 6 and read_card(weights)["device"] == "test CPU"
    for name, tensor in t.net.state_dict().items():  # fp16 weights: relative error within fp16's 2^-11
        assert torch.allclose(module.state_dict()[name], tensor.float(), rtol=1e-3, atol=1e-4), name


def test_an_interrupted_run_resumed_ends_with_the_same_weights(vgg, style_image, content_dir, tmp_path):
    straight = trainer(vgg, style_image, content_dir, tmp_path / "a")
    straight.run()
    first_half = trainer(vgg, style_image, content_dir, tmp_path / "b", steps=4)
    first_half.run()
    (tmp_path / "b" / "loss.jsonl").open("a").write(json.dumps({"step": 5, "total": 0}) + "\n")  # a step lost in the crash
    resumed = trainer(vgg, style_image, content_dir, tmp_path / "b")
    assert resumed.resume() == 4
    resumed.run()
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "loss.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    for name, tensor in straight.net.state_dict().items():
        assert torch.allclose(resumed.net.state_dict()[name], tensor, atol=1e-6), name


def test_the_style_cost_falls_during_training(vgg, style_image, content_dir, tmp_path):
    t = trainer(vgg, style_image, content_dir, tmp_path / "run", steps=12, checkpoint_every=100, sample_every=100)
    t.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "loss.jsonl").read_text().splitlines()]
    first, last = np.mean([e["style"] for e in log[:2]]), np.mean([e["style"] for e in log[-2:]])
    assert last < first / 3, (first, last)  # measured: about 1/30 after 12 steps


def test_resume_refuses_a_checkpoint_trained_with_other_settings(vgg, style_image, content_dir, tmp_path):
    trainer(vgg, style_image, content_dir, tmp_path / "run", steps=2).run()
    other = trainer(vgg, style_image, content_dir, tmp_path / "run", lr=5e-3)
    with pytest.raises(BadInputError, match=r"trained with other settings \(lr\)"):
        other.resume()


def test_bad_inputs_are_named(vgg, style_image, content_dir, tmp_path):
    with pytest.raises(BadInputError, match="no images"):
        content_files(tmp_path)
    with pytest.raises(BadInputError, match="not a folder"):
        content_files(tmp_path / "missing")
    with pytest.raises(BadInputError, match="--variant huge: expected one of edge2, edge, standard"):
        trainer(vgg, style_image, content_dir, tmp_path / "run", variant="huge")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    from facestyle.export.style.shipped import style_module_from_safetensors

    with pytest.raises(ModelFormatError, match="broken.safetensors"):
        style_module_from_safetensors(broken)


def test_cli_trains_and_refuses_to_overwrite_a_run(content_dir, tmp_path, capsys):
    from PIL import Image

    from facestyle.cli import main

    style = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(style)
    args = ["train-style", "--style", str(style), "--content-dir", str(content_dir), "--out", str(tmp_path / "run"),
            "--size", "32", "--batch", "1", "--steps", "2", "--quiet"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 2 and (tmp_path / "run" / "style.safetensors").is_file()
    assert main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args[:-3], "--steps", "3", "--resume", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["resumed_from"] == 2


def test_a_run_can_start_from_another_runs_weights(vgg, style_image, content_dir, tmp_path):
    first = trainer(vgg, style_image, content_dir, tmp_path / "content", steps=2, style_weight=0.0)
    first.run()
    weights, _ = first.export_weights("none", "test CPU")
    for source in (tmp_path / "content" / "checkpoint.pt", weights):
        second = trainer(vgg, style_image, content_dir, tmp_path / f"from-{source.suffix[1:]}", init_from=str(source))
        for name, tensor in first.net.state_dict().items():  # safetensors are fp16: within fp16's precision
            assert torch.allclose(second.net.state_dict()[name], tensor, rtol=1e-3, atol=1e-4), name
    with pytest.raises(BadInputError, match="--init-from .*missing.pt: no such checkpoint"):
        trainer(vgg, style_image, content_dir, tmp_path / "x", init_from=str(tmp_path / "missing.pt"))


def test_per_pixel_gram_targets_the_paintings_mean_correlations_whatever_its_size(vgg, style_image, content_dir, tmp_path):
    from facestyle.export.style.costs import gram_matrix

    summed = trainer(vgg, style_image, content_dir, tmp_path / "sum", style_size=64)
    scaled = trainer(vgg, style_image, content_dir, tmp_path / "pp", style_size=64, gram="per-pixel")
    for layer, feature in summed.style_features.items():
        crop_positions = (32 // 2 ** list(summed.style_features).index(layer)) ** 2  # tiny(): 32 px crops
        painting_positions = feature.shape[-2] * feature.shape[-1]
        assert painting_positions > crop_positions, layer
        per_position = gram_matrix(feature) / painting_positions
        assert torch.allclose(gram_matrix(scaled.style_features[layer]) / crop_positions, per_position, rtol=1e-4), layer
    with pytest.raises(BadInputError, match="--gram mean: expected one of sum, per-pixel"):
        trainer(vgg, style_image, content_dir, tmp_path / "x", gram="mean")


def test_square_style_crop_targets_the_paintings_centre_square(vgg, content_dir, tmp_path):
    from facestyle.export.style.train import style_target

    painting = np.zeros((40, 100, 3), np.uint8)
    painting[:, 30:70] = 200  # the centre square is all 200; the sides are black
    target = style_target(painting, tiny(style_size=20, style_crop="square"))
    assert target.shape == (20, 20, 3) and abs(float(target.mean()) - 200) < 1
    assert style_target(painting, tiny(style_size=50)).shape == (20, 50, 3)  # "full": the longer side
    with pytest.raises(BadInputError, match="--style-crop middle: expected one of full, square"):
        trainer(vgg, painting, content_dir, tmp_path / "x", style_crop="middle")


class _StridedNet(torch.nn.Module):
    """A stride-2 conv and a nearest upsampling: equivariant to even shifts only, the origin of a period-2 grid."""

    def __init__(self):
        super().__init__()
        from facestyle.export.style.transformer import EDGE2

        self.size = EDGE2
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, stride=2, padding=1)

    def forward(self, x):
        return torch.nn.functional.interpolate(self.conv(x), scale_factor=2, mode="nearest")


def test_the_shift_term_is_zero_for_shifts_the_net_is_equivariant_to_and_large_for_the_others():
    from facestyle.export.style.train import shift_consistency, shifts_for_step

    net = _StridedNet()
    photo = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        out = net(photo)
        even = float(shift_consistency(net, photo, out, (2, 4)))
        odd = float(shift_consistency(net, photo, out, (1, 3)))
        scale = float((out**2).flatten(1).sum(1).mean())
    assert even < 1e-9 * scale and odd > 1e-2 * scale
    shifts = {shifts_for_step(tiny(seed=3), step, 8) for step in range(200)}
    assert shifts == {(dy, dx) for dy in range(1, 8) for dx in range(1, 8)}  # every phase but the trivial one
    assert shifts_for_step(tiny(seed=3), 7, 8) == shifts_for_step(tiny(seed=3), 7, 8)


def test_a_run_with_the_shift_term_logs_it_and_refuses_crops_too_small_for_it(vgg, style_image, content_dir, tmp_path):
    run = trainer(vgg, style_image, content_dir, tmp_path / "run", size=56, steps=2, shift_weight=10.0)
    last = run.run()
    c = run.config
    weighted = c.content_weight * last["content"] + c.style_weight * last["style"] + c.tv_weight * last["tv"]
    assert last["shift"] > 0 and last["total"] == pytest.approx(weighted + 10.0 * last["shift"], rel=1e-5)
    _, card_path = run.export_weights("none", "test CPU")
    card = json.loads(card_path.read_text())
    assert card["config"]["shift_weight"] == 10.0 and card["final_losses"]["shift"] > 0
    with pytest.raises(BadInputError, match="--size 32: the shift term needs crops larger than 40 px"):
        trainer(vgg, style_image, content_dir, tmp_path / "small", shift_weight=10.0)


def test_the_moving_average_is_what_a_run_ships_and_resumes_exactly(vgg, style_image, content_dir, tmp_path):
    from facestyle.export.style.shipped import style_module_from_safetensors
    from facestyle.export.style.train import initial_weights

    plain = trainer(vgg, style_image, content_dir, tmp_path / "plain")
    expected = {k: v.clone() for k, v in plain.net.state_dict().items()}
    for _ in range(6):  # the average does not change training, so the plain run's weights give the expected one
        plain.train_step()
        expected = {k: 0.5 * expected[k] + 0.5 * v for k, v in plain.net.state_dict().items()}
    first_half = trainer(vgg, style_image, content_dir, tmp_path / "ema", ema=0.5, steps=4)
    first_half.run()
    resumed = trainer(vgg, style_image, content_dir, tmp_path / "ema", ema=0.5)
    assert resumed.resume() == 4
    resumed.run()
    for name, tensor in expected.items():
        assert torch.allclose(resumed.average.state_dict()[name], tensor, atol=1e-6), name
        assert torch.allclose(resumed.net.state_dict()[name], plain.net.state_dict()[name], atol=1e-6), name
    assert not all(torch.allclose(expected[k], v, atol=1e-4) for k, v in plain.net.state_dict().items())
    weights, _ = resumed.export_weights("motorcycle", "test CPU")
    module, _ = style_module_from_safetensors(weights)
    from_checkpoint = initial_weights(tmp_path / "ema" / "checkpoint.pt")
    for name, tensor in expected.items():  # fp16 weights: within fp16's precision
        assert torch.allclose(module.state_dict()[name], tensor, rtol=1e-3, atol=1e-4), name
        assert torch.allclose(from_checkpoint[name], tensor, atol=1e-6), name
    with pytest.raises(BadInputError, match=r"--ema 1.0: expected a value >= 0 and < 1"):
        trainer(vgg, style_image, content_dir, tmp_path / "x", ema=1.0)
