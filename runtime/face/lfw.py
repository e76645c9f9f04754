"""LFW's verification protocol: pairs files, 10-fold accuracy, TAR at FAR and the ROC, numpy only.

A pair is declared "same" when its embedding distance is <= the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError

FOLDS = 10


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


def image_path(root: Path, name: str, number: int) -> Path:
    """``ROOT/lfw-deepfunneled/<name>/<name>_NNNN.jpg`` or ``ROOT/<name>/<name>_NNNN.jpg``."""
    filename = f"{name}_{number:04d}.jpg"
    for base in (root / "lfw-deepfunneled", root / "lfw", root):
        candidate = base / name / filename
        if candidate.is_file():
            return candidate
    raise BadInputError(f"{root}: no image for {name} #{number} "
                        f"(looked for {name}/{filename} under {root} and its lfw-deepfunneled/)")


def _parse_pair(fields: list[str], root: Path, where: str) -> tuple[Path, Path, bool]:
    if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
        return image_path(root, fields[0], int(fields[1])), image_path(root, fields[0], int(fields[2])), True
    if len(fields) == 4 and fields[1].isdigit() and fields[3].isdigit():
        return image_path(root, fields[0], int(fields[1])), image_path(root, fields[2], int(fields[3])), False
    raise BadInputError(f"{where}: expected 'name n1 n2' or 'name1 n1 name2 n2', got {' '.join(fields)!r}")


def read_pairs(pairs_file: str | Path, root: str | Path) -> list[Pair]:
    """Read View 1 (``pairsDev*.txt``: N, then N same and N different pairs) or View 2 (``pairs.txt``:
    "10 300", then 10 folds of 300 same and 300 different). View 1 has no folds: its same and
    different pairs are each cut into 10 consecutive parts, so every fold holds both kinds."""
    pairs_file, root = Path(pairs_file), Path(root)
    try:
        lines = [line.split() for line in pairs_file.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise BadInputError(f"{pairs_file}: cannot read the pairs file ({exc.strerror})") from None
    if not lines or not all(t.isdigit() for t in lines[0]) or len(lines[0]) not in (1, 2):
        raise BadInputError(f"{pairs_file}: first line must be 'N' (View 1) or 'folds N' (View 2)")
    folds, per_kind = (1, int(lines[0][0])) if len(lines[0]) == 1 else (int(lines[0][0]), int(lines[0][1]))
    body = lines[1:]
    if len(body) != folds * 2 * per_kind:
        raise BadInputError(f"{pairs_file}: header promises {folds * 2 * per_kind} pairs, the file has {len(body)}")
    pairs = []
    for i, fields in enumerate(body):
        a, b, same = _parse_pair(fields, root, f"{pairs_file}:{i + 2}")
        block, within = divmod(i, 2 * per_kind)
        expected_same = within < per_kind
        if same != expected_same:
            raise BadInputError(f"{pairs_file}:{i + 2}: a {'same' if same else 'different'}-person pair "
                                "where the layout expects the other kind")
        fold = block if folds > 1 else (within % per_kind) * FOLDS // per_kind
        pairs.append(Pair(a, b, same, fold))
    return pairs


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy on these pairs (midpoint between neighbouring distances)."""
    order = np.sort(np.unique(distances))
    candidates = np.concatenate([[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-6]])
    accuracy = [np.mean((distances <= t) == same) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per fold: accuracy with the threshold chosen on the other folds; returns (accuracies, thresholds)."""
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        t = best_threshold(distances[~test], same[~test])
        thresholds.append(t)
        accuracies.append(np.mean((distances[test] <= t) == same[test]))
    return np.asarray(accuracies), np.asarray(thresholds)


def threshold_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> float:
    """The largest threshold whose false accept rate (different pairs with distance <= t) is <= far."""
    impostors = np.sort(distances[~same])
    allowed = int(np.floor(far * len(impostors)))
    if allowed >= len(impostors):
        return float(impostors[-1])
    # Accept strictly fewer than `allowed + 1` impostors: stop just below the (allowed+1)-th smallest.
    return float(np.nextafter(impostors[allowed], -np.inf))


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """(true accept rate, threshold) at the given false accept rate."""
    t = threshold_at_far(distances, same, far)
    return float(np.mean(distances[same] <= t)), t


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false accept rates, true accept rates) as the threshold sweeps all distances."""
    thresholds = np.concatenate([[-np.inf], np.sort(distances)])
    far = np.array([np.mean(distances[~same] <= t) for t in thresholds])
    tar = np.array([np.mean(distances[same] <= t) for t in thresholds])
    return far, tar
