"""Parity of the port with dlib-bin, and of the ONNX export with the port, on real aligned faces."""

import numpy as np
import pytest
import torch

from facestyle.export.models.face_embedder import zero_pad_add
from facestyle.face.embedder import FaceEmbedder

DLIB_TOLERANCE = 1e-5  # max abs difference per element of the 128-d vector
ORT_TOLERANCE = 1e-5


def dlib_descriptors(dlib_models, chips):
    return np.array([np.array(dlib_models["recognition"].compute_face_descriptor(c)) for c in chips])


def torch_descriptors(module, embedder_like, chips):
    with torch.no_grad():
        return module(torch.from_numpy(embedder_like.preprocess(np.stack(chips)))).numpy()


def test_zero_pad_add_pads_channels_and_spatial_at_the_end():
    a = torch.arange(8.0).reshape(1, 2, 2, 2)
    b = torch.ones(1, 1, 3, 3)
    out = zero_pad_add(a, b)
    assert out.shape == (1, 2, 3, 3)
    expected = torch.zeros(1, 2, 3, 3)
    expected[:, :2, :2, :2] += a
    expected[:, :1] += 1
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_port_matches_dlib_on_astronaut(dlib_models, torch_embedder, face_onnx, astronaut_chip):
    embedder = FaceEmbedder.from_onnx(face_onnx)
    ours = torch_descriptors(torch_embedder, embedder, [astronaut_chip])
    ref = dlib_descriptors(dlib_models, [astronaut_chip])
    assert np.abs(ours - ref).max() <= DLIB_TOLERANCE
    assert 1.2 < np.linalg.norm(ref) < 1.8  # raw, not L2-normalised


def test_port_matches_dlib_on_shared_faces(dlib_models, torch_embedder, face_onnx, shared_chips):
    chips = [c for cs in shared_chips.values() for c in cs]
    assert len(chips) >= 30
    embedder = FaceEmbedder.from_onnx(face_onnx)
    diff = np.abs(torch_descriptors(torch_embedder, embedder, chips) - dlib_descriptors(dlib_models, chips))
    assert diff.max() <= DLIB_TOLERANCE, f"worst element differs by {diff.max():.3g}"


@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_matches_port(torch_embedder, face_onnx, astronaut_chip, shared_chips, batch):
    chips = ([astronaut_chip] + [c for cs in shared_chips.values() for c in cs])[:batch]
    embedder = FaceEmbedder.from_onnx(face_onnx)
    ort = embedder.embed(np.stack(chips))
    assert ort.shape == (batch, 128)
    assert np.abs(ort - torch_descriptors(torch_embedder, embedder, chips)).max() <= ORT_TOLERANCE


def test_runtime_matches_dlib_end_to_end(dlib_models, face_onnx, astronaut_chip):
    embedder = FaceEmbedder.from_onnx(face_onnx)
    ours = embedder.embed(astronaut_chip)
    assert np.abs(ours - dlib_descriptors(dlib_models, [astronaut_chip])).max() <= DLIB_TOLERANCE


def test_same_person_is_closer_than_the_threshold(face_onnx, shared_chips):
    """Task check on real photos: Obama's photos match each other and not Biden's."""
    embedder = FaceEmbedder.from_onnx(face_onnx)
    def pick(suffix):
        return next(chips[0] for name, chips in shared_chips.items() if name.endswith(suffix))

    obama = embedder.embed(np.stack([pick("/obama.jpg"), pick("/obama2.jpg"), pick("/obama3.jpg")]))
    biden = embedder.embed(pick("/biden.jpg"))
    same = [embedder.distance(obama[i], obama[j]) for i, j in [(0, 1), (0, 2), (1, 2)]]
    different = embedder.distance(obama, biden[0])
    assert max(same) < embedder.threshold < min(different)
