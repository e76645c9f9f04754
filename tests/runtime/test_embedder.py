import json
import shutil

import numpy as np
import onnx
import pytest

from facestyle.errors import BadImageError, ManifestError, ModelFormatError
from facestyle.face.embedder import FaceEmbedder


def with_metadata(src, dst, **changes):
    model = onnx.load(src)
    for prop in list(model.metadata_props):
        if prop.key in changes:
            if changes[prop.key] is None:
                model.metadata_props.remove(prop)
            else:
                prop.value = changes[prop.key]
    onnx.save(model, dst)
    return dst


def test_contract_comes_from_metadata(face_onnx):
    embedder = FaceEmbedder.from_onnx(face_onnx)
    c = embedder.contract
    assert (c.input_size, c.channel_order, c.layout, c.scale) == ((150, 150), "RGB", "NCHW", 1 / 256)
    np.testing.assert_allclose(c.channel_mean, (122.782, 117.001, 104.298), atol=1e-4)
    assert (c.threshold, c.distance, c.output_normalized) == (0.6, "euclidean", False)


def test_preprocessing_follows_the_metadata_not_constants(face_onnx, tmp_path):
    changed = with_metadata(face_onnx, tmp_path / "m.onnx",
                            **{"facestyle.channel_mean": "[0, 0, 0]", "facestyle.channel_order": '"BGR"'})
    chip = np.zeros((150, 150, 3), np.uint8)
    chip[..., 0] = 200  # red
    x = FaceEmbedder.from_onnx(changed).preprocess(chip[None])
    assert x.shape == (1, 3, 150, 150)
    np.testing.assert_allclose(x[0, :, 0, 0], [0, 0, 200 / 256])  # BGR order, no mean


def test_model_without_contract_is_rejected(face_onnx, tmp_path):
    bare = with_metadata(face_onnx, tmp_path / "bare.onnx", **{"facestyle.scale": None})
    with pytest.raises(ModelFormatError, match=r"bare\.onnx: metadata lacks 'facestyle\.scale'"):
        FaceEmbedder.from_onnx(bare)


def test_chips_of_the_wrong_shape_are_rejected(face_onnx):
    embedder = FaceEmbedder.from_onnx(face_onnx)
    with pytest.raises(BadImageError, match=r"expected uint8 \(N, 150, 150, 3\) RGB, got uint8\[1, 160, 160, 3\]"):
        embedder.embed(np.zeros((1, 160, 160, 3), np.uint8))
    with pytest.raises(BadImageError, match=r"got float32\[1, 150, 150, 3\]"):
        embedder.embed(np.zeros((150, 150, 3), np.float32))


def test_batches_larger_than_max_batch_are_split(face_onnx, astronaut_chip):
    chips = np.stack([astronaut_chip, astronaut_chip[:, ::-1], astronaut_chip[::-1]])
    whole = FaceEmbedder.from_onnx(face_onnx).embed(chips)
    split = FaceEmbedder.from_onnx(face_onnx, max_batch=2).embed(chips)
    np.testing.assert_allclose(split, whole, atol=1e-6)
    assert FaceEmbedder.from_onnx(face_onnx).embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)


def test_engines_manifest_is_checked(engines_dir, tmp_path):
    copy = tmp_path / "engines"
    shutil.copytree(engines_dir, copy)
    embedder = FaceEmbedder.from_engines(copy)
    assert embedder.threshold == 0.6
    manifest = copy / "face-embed" / "fp32.manifest.json"
    data = json.loads(manifest.read_text())
    data["threshold"] = 0.55
    manifest.write_text(json.dumps(data))
    assert FaceEmbedder.from_engines(copy).threshold == 0.55  # the manifest's threshold wins
    with open(copy / "face-embed" / "fp32.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError, match=r"fp32\.onnx: sha256 differs from its manifest"):
        FaceEmbedder.from_engines(copy)
    with pytest.raises(ManifestError, match=r"no manifest; run `facestyle build`"):
        FaceEmbedder.from_engines(tmp_path / "nothing")


def test_identity_is_the_sha256_its_loader_gives(face_onnx):
    from facestyle.manifest import file_sha256

    identity = FaceEmbedder.from_onnx(face_onnx).identity
    assert (identity.precision, identity.sha256, identity.dim) == ("fp32", file_sha256(face_onnx), 128)
    named = FaceEmbedder.from_onnx(face_onnx, precision="int8", sha256="ab" * 32).identity
    assert (named.precision, named.sha256) == ("int8", "ab" * 32)  # taken as given, not read from the file


def test_an_embedder_given_no_sha256_says_its_identity_is_unknown(face_onnx):
    from facestyle.backends.onnxruntime import OnnxRuntimeBackend

    embedder = FaceEmbedder(OnnxRuntimeBackend(face_onnx, ["CPUExecutionProvider"]), source="served face-embed")
    with pytest.raises(ModelFormatError, match=r"served face-embed: the artifact's sha256 was not given"):
        embedder.identity
    embedder.close()
