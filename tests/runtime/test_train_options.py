"""The training commands' options: flags made from the config dataclasses, one default each, checked before torch."""

import json
import subprocess
import sys
import textwrap
from dataclasses import fields

import pytest

from conftest import import_blocker
from facestyle.cli import make_parser
from facestyle.errors import BadInputError
from facestyle.options import defaults, flag_of
from facestyle.train_config import EmbeddingTrainConfig, StyleOptimizeConfig, TrainConfig

COMMANDS = {  # command -> (its config, the arguments it needs besides the options)
    "train-embedding": (EmbeddingTrainConfig, ["--data", "d", "--out", "o"]),
    "train-style": (TrainConfig, ["--style", "s.jpg", "--content-dir", "c", "--out", "o"]),
    "style-optimize": (StyleOptimizeConfig, ["c.jpg", "s.jpg", "out.png"]),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_flags_default_to_the_configs_defaults(command):
    config_class, required = COMMANDS[command]
    args = make_parser().parse_args([command, *required])
    expected = defaults(config_class)
    assert {name: getattr(args, name) for name in expected} == expected
    assert len(expected) >= 3


def test_the_generated_flags_keep_their_names_and_parse_to_the_fields():
    parser = make_parser()
    args = parser.parse_args(["train-embedding", "--data", "d", "--out", "o", "--max-steps", "7", "--no-normalize",
                              "--lr", "3e-5", "--identities-per-batch", "8", "--head", "chi2", "--force"])
    assert (args.max_steps, args.normalize, args.lr, args.identities_per_batch, args.head, args.force) == \
        (7, False, 3e-5, 8, "chi2", True)
    args = parser.parse_args(["train-style", *COMMANDS["train-style"][1], "--content-layer", "relu3_3",
                              "--style-crop", "square", "--ema", "0.99", "--init-from", "run/checkpoint.pt"])
    assert (args.content_layer, args.style_crop, args.ema, args.init_from) == ("relu3_3", "square", 0.99,
                                                                               "run/checkpoint.pt")
    flags = {flag_of(f) for f in fields(EmbeddingTrainConfig)}
    assert {"--max-steps", "--epochs", "--no-normalize", "--images-per-identity", "--checkpoint-every"} <= flags


def test_the_style_default_variant_is_the_one_that_ships():
    assert TrainConfig().variant == "edge2"
    assert make_parser().parse_args(["train-style", *COMMANDS["train-style"][1]]).variant == "edge2"


def test_values_out_of_bounds_are_refused_naming_the_flag():
    with pytest.raises(BadInputError, match=r"^--max-steps 0: expected a value >= 1$"):
        EmbeddingTrainConfig(max_steps=0)
    with pytest.raises(BadInputError, match=r"^--lr 0.0: expected a value > 0$"):
        EmbeddingTrainConfig(lr=0.0)
    with pytest.raises(BadInputError, match=r"^--lr nan: expected a value > 0$"):
        EmbeddingTrainConfig(lr=float("nan"))
    with pytest.raises(BadInputError, match=r"^--images-per-identity 1: expected a value >= 2$"):
        EmbeddingTrainConfig(images_per_identity=1)
    with pytest.raises(BadInputError, match=r"^--arch compact --init dlib: dlib's weights fit --arch dlib only"):
        EmbeddingTrainConfig(init="dlib")
    with pytest.raises(BadInputError, match=r"^--ema 1.0: expected a value >= 0 and < 1$"):
        TrainConfig(ema=1.0)
    with pytest.raises(BadInputError, match=r"^--variant huge: expected one of edge2, edge, standard$"):
        TrainConfig(variant="huge")
    with pytest.raises(BadInputError, match=r"^--steps 0: expected a value >= 1$"):
        StyleOptimizeConfig(steps=0)


def test_per_run_defaults_resolve_from_the_start_and_the_data():
    scratch = EmbeddingTrainConfig(identities_per_batch=4, images_per_identity=2).resolved(20)
    assert (scratch.lr, scratch.max_steps, scratch.eval_every) == (1e-3, 30, 3)  # 10 epochs of ceil(20 / 8) steps
    dlib = EmbeddingTrainConfig(arch="dlib", init="dlib", max_steps=5).resolved(20)
    assert (dlib.lr, dlib.max_steps) == (1e-5, 5)


def test_argument_errors_come_before_torch_loads(tmp_path):
    """With torch unimportable, a bad option is still reported as itself (one line, exit 2): it was checked first.
    A good command line gets as far as needing torch, and says so."""
    data = tmp_path / "people"
    data.mkdir()
    style = tmp_path / "painting.png"
    style.write_bytes(b"")
    runs = {
        "max-steps": ["train-embedding", "--data", str(data), "--out", str(tmp_path / "r"), "--max-steps", "0"],
        "lr": ["train-embedding", "--data", str(data), "--out", str(tmp_path / "r"), "--lr", "-1"],
        "ema": ["train-style", "--style", str(style), "--content-dir", str(data), "--out", str(tmp_path / "s"),
                "--ema", "1"],
        "missing style": ["train-style", "--style", str(tmp_path / "nope.png"), "--content-dir", str(data),
                          "--out", str(tmp_path / "s")],
        "steps": ["style-optimize", str(style), str(style), str(tmp_path / "out.png"), "--steps", "0"],
        "good": ["train-embedding", "--data", str(data), "--out", str(tmp_path / "r"), "--max-steps", "1"],
    }
    script = import_blocker("torch") + textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from facestyle.cli import main

        results = {{}}
        for name, argv in {runs!r}.items():
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(argv)
            results[name] = [code, err.getvalue()]
        results["torch loaded"] = "torch" in sys.modules
        print(json.dumps(results))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results.pop("torch loaded") is False
    expected = {
        "max-steps": "facestyle train-embedding: error: --max-steps 0: expected a value >= 1\n",
        "lr": "facestyle train-embedding: error: --lr -1.0: expected a value > 0\n",
        "ema": "facestyle train-style: error: --ema 1.0: expected a value >= 0 and < 1\n",
        "missing style": f"facestyle train-style: error: --style {tmp_path / 'nope.png'}: no such file\n",
        "steps": "facestyle style-optimize: error: --steps 0: expected a value >= 1\n",
        "good": "facestyle train-embedding: error: train-embedding needs the export extra (torch is missing): "
                "pip install 'facestyle[export]'\n",
    }
    assert results == {name: [2, line] for name, line in expected.items()}
