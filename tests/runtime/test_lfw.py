import numpy as np
import pytest

from facestyle.errors import BadInputError
from facestyle.face import lfw


def make_lfw(root, people):
    for name, count in people.items():
        for i in range(1, count + 1):
            path = root / "lfw-deepfunneled" / name / f"{name}_{i:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")


def test_view1_pairs_are_read_with_stratified_folds(tmp_path):
    make_lfw(tmp_path, {"Ann_A": 3, "Bob_B": 2})
    same = ["Ann_A\t1\t2"] * 10
    diff = ["Ann_A\t3\tBob_B\t2"] * 10
    pairs_file = tmp_path / "pairsDevTest.txt"
    pairs_file.write_text("\n".join(["10", *same, *diff]) + "\n")
    pairs = lfw.read_pairs(pairs_file, tmp_path)
    assert len(pairs) == 20 and sum(p.same for p in pairs) == 10
    assert pairs[0].a == tmp_path / "lfw-deepfunneled" / "Ann_A" / "Ann_A_0001.jpg"
    assert pairs[10].b.name == "Bob_B_0002.jpg"
    # each fold holds one same and one different pair
    assert sorted((p.fold, p.same) for p in pairs) == sorted((f, s) for f in range(10) for s in (True, False))


def test_view2_layout_keeps_its_folds(tmp_path):
    make_lfw(tmp_path, {"Ann_A": 2, "Bob_B": 1})
    body = []
    for _ in range(10):
        body += ["Ann_A 1 2", "Ann_A 1 Bob_B 1"]
    (tmp_path / "pairs.txt").write_text("10 1\n" + "\n".join(body))
    pairs = lfw.read_pairs(tmp_path / "pairs.txt", tmp_path)
    assert [p.fold for p in pairs] == [i // 2 for i in range(20)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("x\nAnn_A 1 2", r"first line must be 'N' \(View 1\) or 'folds N' \(View 2\)"),
        ("1\nAnn_A 1 2", r"header promises 2 pairs, the file has 1"),
        ("1\nAnn_A 1 2\nAnn_A one Bob_B 1", r"pairs\.txt:3: expected 'name n1 n2' or 'name1 n1 name2 n2'"),
        ("1\nAnn_A 1 2\nAnn_A 1 9", r"pairs\.txt:3: a same-person pair where the layout expects the other kind"),
        ("1\nAnn_A 1 17\nAnn_A 1 Bob_B 1", r"no image for Ann_A #17"),
    ],
)
def test_malformed_pairs_files_name_the_line(tmp_path, text, message):
    make_lfw(tmp_path, {"Ann_A": 9, "Bob_B": 1})
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(BadInputError, match=message):
        lfw.read_pairs(tmp_path / "pairs.txt", tmp_path)


def test_threshold_accuracy_and_far_on_hand_made_distances():
    d = np.array([0.1, 0.2, 0.3, 0.7, 0.5, 0.8, 0.9, 1.0])
    same = np.array([True, True, True, True, False, False, False, False])
    t = lfw.best_threshold(d, same)
    # 0.5 (different) lies below 0.7 (same): no threshold gets both right, the best gets 7 of 8
    assert np.mean((d <= t) == same) == 0.875 and (0.3 < t < 0.5 or 0.7 < t < 0.8)
    # FAR 0.25 allows one of the four impostors: threshold just below the 2nd smallest impostor (0.8)
    tar, t25 = lfw.tar_at_far(d, same, 0.25)
    assert 0.7 <= t25 < 0.8 and tar == 1.0
    tar0, t0 = lfw.tar_at_far(d, same, 0.0)
    assert t0 < 0.5 and tar0 == 0.75
    far, tar_curve = lfw.roc_curve(d, same)
    assert far[0] == 0 and tar_curve[-1] == 1 and np.all(np.diff(far) >= 0)


def test_kfold_chooses_thresholds_on_other_folds():
    rng = np.random.default_rng(1)
    same = np.tile([True, False], 50)
    d = np.where(same, rng.uniform(0.2, 0.55, 100), rng.uniform(0.65, 1.0, 100))
    folds = np.arange(100) % 10
    acc, thresholds = lfw.kfold_accuracy(d, same, folds)
    assert acc.shape == (10,) and np.all(acc == 1.0)
    assert np.all((thresholds > 0.5) & (thresholds < 0.7))
