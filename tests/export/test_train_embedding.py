"""train-embedding on real LFW photos: exact resume, the export that --model uses, the similarity head, errors."""

import json
import re

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, require_shared
from facestyle.cli import main
from facestyle.errors import BadInputError

LFW = SHARED_DATA / "lfw-view1" / "lfw-deepfunneled"
PEOPLE = ["Ricardo_Lagos", "Paul_Wolfowitz", "Jennifer_Lopez", "Zhu_Rongji", "Angelina_Jolie", "Hans_Blix",
          "John_Bolton", "Donald_Rumsfeld"]


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """DATA/<identity>/<3 photos> for 8 LFW people (links to the shared photos)."""
    root = tmp_path_factory.mktemp("people")
    for person in PEOPLE:
        (root / person).mkdir()
        for photo in sorted((require_shared(LFW) / person).glob("*.jpg"))[:3]:
            (root / person / photo.name).symlink_to(photo)
    return root


@pytest.fixture(scope="module")
def faces(people, engines_dir, tmp_path_factory):
    from facestyle.export.embedding.data import ChipCache, load_face_set
    from facestyle.face.analyzer import FaceAnalyzer

    cache = ChipCache(tmp_path_factory.mktemp("chips"), lambda: FaceAnalyzer.from_engines(engines_dir))
    return load_face_set(people, cache, progress=False)


def trainer(faces, out, steps, **overrides):
    from facestyle.export.embedding.train import EmbeddingTrainConfig, EmbeddingTrainer

    config = EmbeddingTrainConfig(identities_per_batch=4, images_per_identity=2, max_steps=steps, checkpoint_every=2,
                                  eval_every=2, **overrides)
    return EmbeddingTrainer(faces, None, out, config)


def test_the_face_set_holds_one_aligned_chip_per_photo(faces):
    assert faces.chips.shape == (24, 150, 150, 3) and faces.names == sorted(PEOPLE)
    assert np.bincount(faces.labels).tolist() == [3] * 8


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(faces, tmp_path):
    straight = trainer(faces, tmp_path / "straight", 4)
    straight.run()
    interrupted = trainer(faces, tmp_path / "resumed", 2)
    interrupted.run()
    resumed = trainer(faces, tmp_path / "resumed", 4)
    assert resumed.resume() == 2
    resumed.run()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "loss.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # no step logged twice
    with pytest.raises(BadInputError, match=r"trained with other settings \(margin\)"):
        trainer(faces, tmp_path / "resumed", 6, margin=0.5).resume()


def test_triplet_training_lowers_the_mined_loss(faces, tmp_path):
    run = trainer(faces, tmp_path / "run", 30, lr=3e-3)
    run.run()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "loss.jsonl").read_text().splitlines()]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def test_train_embedding_exports_a_model_that_verify_model_uses(people, engines_dir, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--engines", str(engines_dir)]
    assert main(["train-embedding", "--data", str(people), "--out", str(run), "--max-steps", "3",
                 "--identities-per-batch", "4", "--images-per-identity", "2", "--chip-cache", str(tmp_path / "chips"),
                 "--json", "--quiet", *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    manifest = json.loads((run / "engines" / "face-embed" / "fp32.manifest.json").read_text())
    assert summary["steps"] == 3 and manifest["kind"] == "face-embed" and manifest["contract"]["output_normalized"]
    # 2 of the 8 people held out (3 photos each): 2 x 3 same pairs, 3 x 3 different; the other 6 people's 18 chips
    # give 6 x 3 same and 18 x 17 / 2 - 18 different training pairs: every pair there is, none twice
    held = summary["held_out"]
    assert held["pairs"] == {"same": 6, "different": 9} and summary["calibration_pairs"] == {"same": 18, "different": 135}
    assert held["start"]["step"] == 0 and held["end"]["step"] == 3 and held["end"]["spread"] > 0
    assert manifest["threshold_source"] == "calibrated on 18 same + 135 different training pairs (best accuracy)"
    assert manifest["parity"]["outputs"]["embeddings"]["max_abs_diff"] <= 1e-5
    assert manifest["threshold"] == pytest.approx(summary["threshold"], abs=1e-6) and manifest["head"]["form"] == "abs"
    a, b = (str(sorted((people / "Hans_Blix").iterdir())[i]) for i in (0, 1))
    code = main(["verify", a, b, "--model", str(run), "--head", "--json", *common])
    verdict = json.loads(capsys.readouterr().out)
    assert code == (0 if verdict["same"] else 1) and 0 <= verdict["head_probability"] <= 1
    assert verdict["decided_by"].startswith("similarity head (abs)") and "calibrated on" in verdict["threshold_source"]
    main(["embed", a, "--model", str(run), "--json", *common])
    trained = np.array(json.loads(capsys.readouterr().out)[0]["faces"][0]["embedding"])
    main(["embed", a, "--json", *common])
    stock = np.array(json.loads(capsys.readouterr().out)[0]["faces"][0]["embedding"])
    assert abs(np.linalg.norm(trained) - 1) < 1e-4 and abs(np.linalg.norm(stock) - 1) > 0.05  # its own model
    assert main(["train-embedding", "--data", str(people), "--out", str(run), *common]) == 2
    assert "holds a run's checkpoint; pass --resume" in capsys.readouterr().err
    pairs = tmp_path / "pairs.txt"  # LFW View 1 format: N, N same pairs, N different pairs
    pairs.write_text("2\nHans_Blix\t2\t3\nAngelina_Jolie\t3\t4\nHans_Blix\t2\tAngelina_Jolie\t3\n"
                     "John_Bolton\t3\tAngelina_Jolie\t4\n")
    built = (engines_dir / "face-embed" / "fp32.manifest.json").read_text()
    assert main(["calibrate", "--root", str(require_shared(LFW)), "--pairs", str(pairs), "--far", "0.5",
                 "--model", str(run), "--no-cache", "--quiet", *common]) == 0
    calibrated = json.loads(capsys.readouterr().out)  # into the run's manifest, never the built model's
    assert calibrated["manifest"] == str(run / "engines" / "face-embed" / "fp32.manifest.json")
    assert json.loads((run / "engines" / "face-embed" / "fp32.manifest.json").read_text())["threshold"] == calibrated["threshold"]
    assert (engines_dir / "face-embed" / "fp32.manifest.json").read_text() == built


def test_verify_head_needs_a_model_with_one(engines_dir, people, capsys):
    a = str(sorted((people / "Hans_Blix").iterdir())[0])
    assert main(["verify", a, a, "--head", "--engines", str(engines_dir)]) == 2
    assert "--head: needs --model RUN, a `facestyle train-embedding` run with a similarity head" in capsys.readouterr().err
    assert main(["verify", a, a, "--model", str(people), "--engines", str(engines_dir)]) == 2
    assert "no trained embedding in it" in capsys.readouterr().err


def test_training_pairs_are_distinct_and_as_many_as_the_faces_hold(faces):
    from facestyle.export.embedding.data import training_pairs

    a, b, same = training_pairs(faces, 1000, seed=0)  # 8 people x 3 photos: 24 same pairs and 252 different exist
    assert (same.sum(), (~same).sum()) == (24, 252)
    assert len({(int(x), int(y)) for x, y in zip(a, b)}) == len(a) and np.all(a != b)
    assert np.array_equal(faces.labels[a] == faces.labels[b], same)
    a, b, same = training_pairs(faces, 10, seed=0)
    assert (same.sum(), (~same).sum()) == (10, 10)


def test_a_collapsing_fine_tune_is_refused_with_its_figures(people, engines_dir, tmp_path, capsys):
    """dlib's weights at the from-scratch learning rate: within 2 steps every face maps near one point (measured:
    spread 0.58 -> 5e-05, accuracy 1.0 -> 0.55); the command says so in one line and exports nothing."""
    run = tmp_path / "run"
    argv = ["train-embedding", "--data", str(people), "--out", str(run), "--arch", "dlib", "--init", "dlib",
            "--lr", "1e-3", "--max-steps", "2", "--identities-per-batch", "4", "--images-per-identity", "2",
            "--head", "none", "--chip-cache", str(tmp_path / "chips"), "--quiet", "--engines", str(engines_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match(
        r"facestyle train-embedding: error: the trained model is worse than its start on the 6 same \+ 9 different "
        r"held-out pairs \(accuracy \d\.\d{4} -> \d\.\d{4}, spread 0\.\d+ -> [\d.e-]+ at step 2\); not exported", err), err
    assert not (run / "engines").exists()
    start, end = (json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines())
    assert end["spread"] < 0.01 * start["spread"] and end["accuracy"] < start["accuracy"] - 0.2


def test_the_collapse_check_compares_the_end_with_the_start():
    from facestyle.errors import TrainingRegressionError
    from facestyle.export.embedding.run import check_not_worse

    def held(start, end, pairs=1000):
        return {"pairs": {"same": pairs // 2, "different": pairs // 2}, "start": {"step": 0, **start},
                "end": {"step": 60, **end}}

    check_not_worse(held({"accuracy": 0.983, "spread": 0.9}, {"accuracy": 0.974, "spread": 0.8}), force=False)
    with pytest.raises(TrainingRegressionError, match=r"accuracy 0\.9830 -> 0\.9600, spread 0\.9 -> 0\.8 at step 60"):
        check_not_worse(held({"accuracy": 0.983, "spread": 0.9}, {"accuracy": 0.96, "spread": 0.8}), force=False)
    with pytest.raises(TrainingRegressionError, match=r"spread 0\.9 -> 0\.012 .*pass --force"):
        check_not_worse(held({"accuracy": 0.983, "spread": 0.9}, {"accuracy": 0.99, "spread": 0.012}), force=False)
    with pytest.raises(TrainingRegressionError, match=r"-> nan"):
        check_not_worse(held({"accuracy": 0.983, "spread": 0.9}, {"accuracy": 0.5, "spread": float("nan")}), force=False)
    check_not_worse(held({"accuracy": 0.983, "spread": 0.9}, {"accuracy": 0.5, "spread": 0.01}), force=True)
    check_not_worse(held({"accuracy": 0.6, "spread": 0.3}, {"accuracy": 0.5, "spread": 0.3}, pairs=15), force=False)


def test_bad_training_options_are_refused(people, faces, tmp_path, capsys):
    from facestyle.export.embedding.data import load_face_set

    with pytest.raises(BadInputError, match=r"--arch compact --init dlib: dlib's weights fit --arch dlib only"):
        trainer(faces, tmp_path / "x", 1, init="dlib")
    lonely = tmp_path / "lonely"
    (lonely / "ada").mkdir(parents=True)
    (lonely / "ada" / "a.jpg").symlink_to(next((people / "Hans_Blix").iterdir()))
    with pytest.raises(BadInputError, match=r"needs at least 2 identities with 2 or more photos each"):
        load_face_set(lonely, None)


@pytest.mark.parametrize("form", ["abs", "chi2"])
def test_the_similarity_head_separates_real_pairs_and_exports_with_parity(faces, engines_dir, tmp_path, form):
    from facestyle.backends.onnxruntime import OnnxRuntimeBackend
    from facestyle.export.embedding.data import training_pairs
    from facestyle.export.embedding.head import export_head, fit_head, head_probabilities
    from facestyle.face.embedder import FaceEmbedder
    from facestyle.face.head import SimilarityHead

    vectors = FaceEmbedder.from_engines(engines_dir).embed(faces.chips)  # dlib's embeddings of real chips
    a, b, same = training_pairs(faces, 60, seed=0)
    head = fit_head(vectors[a], vectors[b], same, form)
    p = head_probabilities(head, vectors[a], vectors[b])
    assert np.mean((p >= 0.5) == same) >= 0.9
    parity = export_head(head, vectors[a], vectors[b], tmp_path / "head.onnx")
    assert parity["outputs"]["probability"]["max_abs_diff"] <= 1e-5
    onnx_p = SimilarityHead(OnnxRuntimeBackend(tmp_path / "head.onnx"), form).probability(vectors[a], vectors[b])
    assert np.abs(onnx_p - p).max() <= 1e-5
