import json

import pytest

from facestyle.cli import main
from facestyle.errors import ModelFormatError
from facestyle.export.build import build
from facestyle.manifest import file_sha256


def test_manifest_describes_the_artifact(engines_dir):
    manifest = json.loads((engines_dir / "face-embed" / "fp32.manifest.json").read_text())
    onnx_path = engines_dir / "face-embed" / manifest["artifact"]
    assert manifest["artifact_sha256"] == file_sha256(onnx_path)
    assert (manifest["model"], manifest["precision"], manifest["threshold"]) == ("face-embed", "fp32", 0.6)
    assert manifest["opset"] >= 17
    assert manifest["inputs"] == [{"name": "chips", "shape": ["batch", 3, 150, 150], "dtype": "float32"}]
    assert manifest["source"]["sha256"] == manifest["contract"]["source_sha256"]
    assert manifest["source"]["parameters"] == 5_614_592
    parity = manifest["parity"]["outputs"]["embeddings"]
    assert parity["max_abs_diff"] <= parity["atol"] == 1e-5
    assert manifest["parity"]["batches"] == [1, 7]


def test_detector_manifest_carries_the_decoding_contract(engines_dir):
    manifest = json.loads((engines_dir / "face-detect" / "fp32.manifest.json").read_text())
    c = manifest["contract"]
    assert (c["window"], c["cell_stride"], c["cell_offset"], c["pyramid_downsample"]) == ([80, 80], 8, 14, 6)
    assert manifest["inputs"][0]["shape"] == ["batch", 3, "height", "width"]
    parity = manifest["parity"]["outputs"]["scores"]
    assert parity["max_abs_diff"] <= parity["atol"] == 1e-4
    assert manifest["source"]["parameters"] == 181_141


FACE_MODELS = ("face-embed", "face-detect", "landmarks-5")


def test_unknown_models_and_engines_without_tensorrt_are_refused(engines_dir, capsys):
    assert main(["build", "--out", str(engines_dir), "--models", "face-embed,style-nope"]) == 2
    assert "unknown model(s) style-nope: expected some of face-embed, face-detect" in capsys.readouterr().err
    try:
        import tensorrt  # noqa: F401 (imported only to skip without TensorRT)
    except ImportError:
        assert main(["build", "--out", str(engines_dir), "--models", "face-detect", "--engine", "trt"]) == 2
        assert "TensorRT is not installed" in capsys.readouterr().err
        assert not list(engines_dir.rglob("*.engine"))


def test_rebuild_with_nothing_changed_is_a_no_op(engines_dir, capsys):
    onnx_path = engines_dir / "face-embed" / "fp32.onnx"
    before = onnx_path.stat().st_mtime_ns
    assert main(["build", "--out", str(engines_dir), "--models", ",".join(FACE_MODELS)]) == 0
    out = capsys.readouterr().out
    assert "up to date" in out and "Nothing changed" in out
    assert onnx_path.stat().st_mtime_ns == before


def test_a_tampered_artifact_is_rebuilt(engines_dir, tmp_path):
    import shutil

    copy = tmp_path / "engines"
    shutil.copytree(engines_dir, copy)
    with open(copy / "face-embed" / "fp32.onnx", "ab") as f:
        f.write(b"\0")
    embed, detect, landmarks = build(copy, models=FACE_MODELS)
    assert embed.status == "built" and embed.max_abs_diff <= 1e-5
    assert detect.status == landmarks.status == "up to date"


def test_build_with_a_bad_source_path_names_it(tmp_path, capsys):
    assert main(["build", "--out", str(tmp_path), "--recognition-model", str(tmp_path / "nope.dat")]) == 2
    assert f"{tmp_path / 'nope.dat'}: no such dlib model file" in capsys.readouterr().err
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\x01\x01\x01\x05junk!")
    with pytest.raises(ModelFormatError, match=r"bad\.dat at byte 2: expected record 'loss_metric_'"):
        build(tmp_path, recognition_model=bad)
    assert not list(tmp_path.rglob("*.onnx"))  # nothing half-written
