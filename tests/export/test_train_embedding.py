"""train-embedding on real LFW photos: exact resume, the export that --model uses, the similarity head, errors."""

import json

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
    assert "has no similarity head (train-embedding --head abs fits one" in capsys.readouterr().err
    assert main(["verify", a, a, "--model", str(people), "--engines", str(engines_dir)]) == 2
    assert "no trained embedding in it" in capsys.readouterr().err


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
    from facestyle.export.embedding.data import training_pairs
    from facestyle.export.embedding.head import export_head, fit_head, head_probabilities
    from facestyle.face.embedder import FaceEmbedder
    from facestyle.face.head import SimilarityHead
    from facestyle.backends.onnxruntime import OnnxRuntimeBackend

    vectors = FaceEmbedder.from_engines(engines_dir).embed(faces.chips)  # dlib's embeddings of real chips
    a, b, same = training_pairs(faces, 60, seed=0)
    head = fit_head(vectors[a], vectors[b], same, form)
    p = head_probabilities(head, vectors[a], vectors[b])
    assert np.mean((p >= 0.5) == same) >= 0.9
    parity = export_head(head, vectors[a], vectors[b], tmp_path / "head.onnx")
    assert parity["outputs"]["probability"]["max_abs_diff"] <= 1e-5
    onnx_p = SimilarityHead(OnnxRuntimeBackend(tmp_path / "head.onnx"), form).probability(vectors[a], vectors[b])
    assert np.abs(onnx_p - p).max() <= 1e-5
