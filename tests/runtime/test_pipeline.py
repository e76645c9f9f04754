"""The whole face pipeline on real photos: against dlib's own pipeline, and through the CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FACES, SHARED_DATA, CountingEmbedStep, require_shared
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


def test_the_embed_step_is_pluggable_and_gets_every_chip_in_one_call(analyzer):
    group, single = photo("kit_with_rose.jpg"), photo("obama.jpg")
    step = CountingEmbedStep(analyzer.embedder)
    swapped = analyzer.with_embedder(step)
    got = swapped.faces_batch([group, single])
    want = analyzer.faces_batch([group, single])
    assert step.calls == [3]  # two faces and one, embedded together
    assert [[f.box.tolist() for f in faces] for faces in got] == [[f.box.tolist() for f in faces] for faces in want]
    assert max(float(np.abs(g.embedding - w.embedding).max()) for g, w in zip(got[0] + got[1], want[0] + want[1])) == 0
    assert swapped.faces_batch([np.zeros((64, 64, 3), np.uint8)]) == [[]] and step.calls == [3]  # no face: no call


def test_the_analyzer_times_its_own_stages(analyzer):
    timings = {}
    faces = analyzer.faces(str(photo("obama.jpg")), timings=timings)
    assert len(faces) == 1 and list(timings) == ["decode", "detect", "landmarks", "align", "embed"]
    assert all(v > 0 for v in timings.values())
    empty = {}
    assert analyzer.faces(np.zeros((64, 64, 3), np.uint8), timings=empty) == []
    assert list(empty) == list(timings) and empty["landmarks"] == empty["align"] == empty["embed"] == 0.0


def test_one_threshold_rule_for_every_comparison(analyzer):
    from facestyle.face.embedder import Threshold

    kept = analyzer.threshold_for(None, "given here")
    assert kept == Threshold(0.6, analyzer.embedder.threshold_source) and kept.source.startswith("manifest ")
    assert analyzer.threshold_for(0.45, "given here") == Threshold(0.45, "given here")
    assert Threshold(0.6, "model").unless_given(0, "caller") == Threshold(0.0, "caller")  # 0 is a threshold too
    strict = analyzer.verify(photo("obama.jpg"), photo("obama2.jpg"), threshold=0.0)
    assert (strict.threshold, strict.same, strict.threshold_source) == (0.0, False, "--threshold given on the command line")


def test_identify_builds_one_result_whose_json_is_the_clis(analyzer, tmp_path):
    from facestyle.face.analyzer import STAGES
    from facestyle.face.gallery import Gallery, enroll_photos, identify_photo

    gallery = Gallery.open(tmp_path / "g.db", analyzer.embedder.identity)
    enroll_photos(gallery, analyzer, "obama", [photo("obama.jpg")])
    found = identify_photo(gallery, analyzer, photo("obama2.jpg"))
    out = json.loads(json.dumps(found.to_json()))
    assert list(out) == ["faces", "threshold", "threshold_source", "timings"] and list(out["timings"]) == list(STAGES)
    assert list(out["faces"][0]) == ["box", "matches", "identity"] and out["faces"][0]["identity"] == "obama"
    assert out["faces"][0]["box"] == [int(v) for v in analyzer.faces(photo("obama2.jpg"))[0].box]
    assert out["threshold"] == 0.6 and out["threshold_source"].startswith("manifest ")
    strict = analyzer.identify(gallery, photo("obama2.jpg"), threshold=0.0, given_source="given here")
    assert [f.identity for f in strict.faces] == ["unknown"] and strict.faces[0].matches[0].name == "obama"
    assert strict.to_json(timings=False) == {"faces": [strict.faces[0].to_json()], "threshold": 0.0,
                                             "threshold_source": "given here"}
    gallery.close()


def test_the_embedding_model_is_hashed_once_when_loaded(engines_dir, monkeypatch):
    """Its sha256 (the identity a gallery records) comes from the load that checked it, not a second read."""
    import facestyle.manifest as manifest
    from facestyle.face import embedder as fe

    real, hashed = manifest.file_sha256, []

    def counting_sha256(path):
        hashed.append(Path(path).resolve())
        return real(path)

    monkeypatch.setattr(manifest, "file_sha256", counting_sha256)
    monkeypatch.setattr(fe, "file_sha256", counting_sha256)  # the name the embedder module holds
    artifact = (engines_dir / "face-embed" / "fp32.onnx").resolve()
    with fe.FaceEmbedder.from_engines(engines_dir) as embedder:
        first, second = embedder.identity, embedder.identity
    assert hashed.count(artifact) == 1
    assert first is second and (first.precision, first.sha256) == ("fp32", real(artifact))
