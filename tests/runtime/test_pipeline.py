"""The whole face pipeline on real photos: against dlib's own pipeline, and through the CLI."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import FACES, SHARED_DATA, require_shared
from facestyle.cli import main
from facestyle.face.analyzer import FaceAnalyzer
from facestyle.images import load_image

LFW = SHARED_DATA / "lfw-view1"


@pytest.fixture(scope="module")
def analyzer(engines_dir):
    return FaceAnalyzer.from_engines(engines_dir)


def photo(name: str):
    return next(p for p in require_shared(FACES).rglob(name))


def dlib_pipeline(dlib, dlib_models, image, upsample=0):
    """dlib's CNN detector + 5 landmarks + get_face_chip + compute_face_descriptor."""
    from facestyle.export.dlib.files import DETECTOR_MODEL, locate_dlib_model

    cnn = dlib.cnn_face_detection_model_v1(str(locate_dlib_model(DETECTOR_MODEL)))
    out = []
    for d in cnn(image, upsample):
        shape = dlib_models["shape5"](image, d.rect)
        chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
        box = [d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()]
        out.append((box, np.array(dlib_models["recognition"].compute_face_descriptor(chip))))
    return sorted(out, key=lambda f: f[0])


@pytest.mark.parametrize("name", ["astronaut", "kit_with_rose.jpg"])
def test_pipeline_matches_dlibs_pipeline(dlib, dlib_models, analyzer, name):
    if name == "astronaut":
        from facestyle.export.sample_inputs import skimage_data_dir

        image = load_image(skimage_data_dir() / "astronaut.png")
    else:
        image = load_image(photo(name))
    ours = sorted(((f.box.tolist(), f.embedding) for f in analyzer.faces(image)), key=lambda f: f[0])
    ref = dlib_pipeline(dlib, dlib_models, image)
    assert [b for b, _ in ours] == [b for b, _ in ref] and len(ref) >= 1
    diff = max(np.abs(e - r).max() for (_, e), (_, r) in zip(ours, ref))
    assert diff <= 1e-5


def test_embed_json_lists_faces_per_image(engines_dir, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 160), (90, 90, 90)).save(blank)
    group = photo("kit_with_rose.jpg")
    assert main(["embed", str(group), str(blank), "--json", "--engines", str(engines_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in out] == [str(group), str(blank)]
    assert len(out[0]["faces"]) == 2 and out[1]["faces"] == []
    face = out[0]["faces"][0]
    assert set(face) == {"box", "score", "landmarks", "embedding"}
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and len(face["embedding"]) == 128
    assert face["score"] > 0


def test_verify_same_and_different_people(engines_dir, capsys):
    obama, obama2, biden = photo("obama.jpg"), photo("obama2.jpg"), photo("biden.jpg")
    assert main(["verify", str(obama), str(obama2), "--json", "--engines", str(engines_dir)]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["same"] is True and same["distance"] < same["threshold"] == 0.6
    assert "manifest" in same["threshold_source"]
    assert main(["verify", str(obama), str(biden), "--json", "--engines", str(engines_dir), "--threshold", "0.5"]) == 1
    different = json.loads(capsys.readouterr().out)
    assert different["same"] is False and different["distance"] > 0.6 and different["threshold"] == 0.5
    assert different["threshold_source"] == "--threshold given on the command line"


def test_verify_says_which_face_it_used_and_fails_without_a_face(engines_dir, tmp_path, capsys):
    group, kit = photo("kit_with_rose.jpg"), photo("john1.jpeg")
    assert main(["verify", str(group), str(kit), "--json", "--engines", str(engines_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["faces"] == {"a": 2, "b": 1}
    assert result["notes"] == [f"{group}: 2 faces found, using the largest"]
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 120), (200, 200, 200)).save(blank)
    assert main(["verify", str(blank), str(kit), "--engines", str(engines_dir)]) == 2
    assert f"{blank}: no face found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def lfw_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache") / "embeddings.sqlite"


def test_lfw_view1_devtest_accuracy(engines_dir, lfw_cache, tmp_path, capsys):
    root = require_shared(LFW)
    roc = tmp_path / "roc.png"
    args = ["eval-lfw", "--root", str(root), "--pairs", str(root / "pairsDevTest.txt"), "--json", "--quiet",
            "--engines", str(engines_dir), "--cache", str(lfw_cache), "--plot", str(roc)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 1000 and report["images"] == 1549
    # dlib's own pipeline scores 0.983 on these pairs (benchmarks/results/lfw-view1-devtest-dlib.json)
    assert report["accuracy"] >= 0.981
    assert report["std"] < 0.02
    assert 0.5 < report["threshold"] < 0.7
    assert report["tar_at_far"]["0.01"] >= 0.95
    assert report["no_face"] <= 10
    assert Image.open(roc).size == (640, 480)


def test_calibrate_writes_the_threshold_that_verify_then_uses(engines_dir, lfw_cache, tmp_path, capsys):
    root = require_shared(LFW)
    engines = tmp_path / "engines"
    shutil.copytree(engines_dir, engines)
    args = ["calibrate", "--root", str(root), "--pairs", str(root / "pairsDevTest.txt"), "--far", "0.01", "--quiet",
            "--engines", str(engines), "--cache", str(lfw_cache)]
    assert main(args) == 0
    calibrated = json.loads(capsys.readouterr().out)
    assert 0.45 < calibrated["threshold"] < 0.75 and calibrated["tar"] >= 0.95
    manifest = json.loads((engines / "face-embed" / "fp32.manifest.json").read_text())
    assert manifest["threshold"] == calibrated["threshold"]
    obama, obama2 = photo("obama.jpg"), photo("obama2.jpg")
    assert main(["verify", str(obama), str(obama2), "--json", "--engines", str(engines)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threshold"] == calibrated["threshold"]
    assert "calibrated on pairsDevTest.txt (1000 pairs) for FAR 0.01" in result["threshold_source"]
