"""Triplet loss against hand-computed values, and the three miners against their definitions on real embeddings."""

import itertools

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, require_shared
from facestyle.export.embedding.triplet import (
    mine_batch_all,
    mine_batch_hard,
    mine_semi_hard,
    mined_loss,
    pairwise_distances,
    triplet_loss,
)

LFW = SHARED_DATA / "lfw-view1" / "lfw-deepfunneled"
PEOPLE = ["Ricardo_Lagos", "Paul_Wolfowitz", "Jennifer_Lopez", "Zhu_Rongji", "Angelina_Jolie", "Hans_Blix"]


def test_triplet_loss_by_hand():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    n = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    # max(1 - 4 + 0.5, 0) = 0 and max(4 - 2 + 0.5, 0) = 2.5
    assert triplet_loss(a, p, n, 0.5).item() == pytest.approx(2.5)
    assert triplet_loss(a, p, n, 0.5, reduction="mean").item() == pytest.approx(1.25)
    assert triplet_loss(a, p, n, 3.5).item() == pytest.approx(0.5 + 5.5)


def test_pairwise_distances_are_euclidean_and_differentiable_at_zero():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    d = pairwise_distances(x)
    assert d[0, 1].item() == pytest.approx(5.0) and d[0, 2].item() == 0.0 and d[1, 1].item() == 0.0
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.fixture(scope="module")
def real_batch(engines_dir):
    """dlib's embeddings (our ONNX) of 6 LFW people x 3 photos: a real PK batch, P=6, K=3."""
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.evaluation import subject_embedding
    from facestyle.images import load_image

    root = require_shared(LFW)
    analyzer = FaceAnalyzer.from_engines(engines_dir)
    vectors, labels = [], []
    for label, person in enumerate(PEOPLE):
        for path in sorted((root / person).glob("*.jpg"))[:3]:
            vectors.append(subject_embedding(analyzer, load_image(path))[1])
            labels.append(label)
    return torch.from_numpy(np.stack(vectors)), torch.tensor(labels)


ALPHA = 0.3


def test_batch_all_is_every_valid_triplet_with_a_positive_loss(real_batch):
    x, labels = real_batch
    d = pairwise_distances(x)
    got = set(zip(*(t.tolist() for t in mine_batch_all(d, labels, ALPHA))))
    expected = {(a, p, n) for a, p, n in itertools.product(range(len(x)), repeat=3)
                if a != p and labels[a] == labels[p] and labels[a] != labels[n]
                and d[a, p] ** 2 - d[a, n] ** 2 + ALPHA > 0}
    assert got == expected and 0 < len(got) < 6 * 3 * 2 * 15  # some, but not every valid triplet


def test_batch_hard_takes_the_farthest_positive_and_nearest_negative(real_batch):
    x, labels = real_batch
    d = pairwise_distances(x)
    a, p, n = mine_batch_hard(d, labels, ALPHA)
    assert a.tolist() == list(range(len(x)))
    for i, j, k in zip(a.tolist(), p.tolist(), n.tolist()):
        positives = [q for q in range(len(x)) if q != i and labels[q] == labels[i]]
        negatives = [q for q in range(len(x)) if labels[q] != labels[i]]
        assert d[i, j] == max(d[i, q] for q in positives) and labels[j] == labels[i] and j != i
        assert d[i, k] == min(d[i, q] for q in negatives) and labels[k] != labels[i]


def test_semi_hard_negatives_lie_in_the_margin_window(real_batch):
    x, labels = real_batch
    d = pairwise_distances(x)
    a, p, n = mine_semi_hard(d, labels, ALPHA)
    assert len(a) > 0
    for i, j, k in zip(a.tolist(), p.tolist(), n.tolist()):
        assert labels[i] == labels[j] and i != j and labels[k] != labels[i]
        assert d[i, j] < d[i, k] < d[i, j] + ALPHA
        window = [q for q in range(len(x)) if labels[q] != labels[i] and d[i, j] < d[i, q] < d[i, j] + ALPHA]
        assert d[i, k] == min(d[i, q] for q in window)  # the nearest of them
    mined = set(zip(a.tolist(), p.tolist()))
    for i, j in itertools.permutations(range(len(x)), 2):  # and every pair that has one is mined
        if labels[i] == labels[j] and any(labels[q] != labels[i] and d[i, j] < d[i, q] < d[i, j] + ALPHA
                                          for q in range(len(x))):
            assert (i, j) in mined


def test_random_triplets_are_mostly_easy_but_mined_ones_are_not(real_batch):
    x, labels = real_batch
    loss, count = mined_loss(x, labels, "batch-hard", ALPHA)
    d = pairwise_distances(x)
    valid = [(a, p, n) for a, p, n in itertools.product(range(len(x)), repeat=3)
             if a != p and labels[a] == labels[p] and labels[a] != labels[n]]
    easy = np.mean([float(d[a, p] + ALPHA <= d[a, n]) for a, p, n in valid])
    assert easy > 0.8 and count == len(x) and loss.item() > 0  # dlib's embedding already separates most
