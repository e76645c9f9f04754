"""LFW evaluation and threshold calibration with the real pipeline, embeddings cached on disk.

Face-not-found policy (documented in the README): the detector runs at the analyzer's upsampling;
if it finds nothing it runs once more with one more upsampling; if it still finds nothing, a centred
box (side 45% of the shorter image side, where LFW's funneled faces sit) is used, and the image is
counted in ``no_face``. With several faces, the one whose box centre is nearest the image centre is
the subject (LFW centres the named person).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..images import load_image
from ..paths import cache_dir
from ..progress import Progress
from . import lfw

if TYPE_CHECKING:
    from .analyzer import FaceAnalyzer

FARS = (0.001, 0.01)
POLICY = "upsample+1-then-centre-box-v1"


def default_cache_path() -> Path:
    return cache_dir() / "embeddings.sqlite"


class EmbeddingCache:
    """sqlite: (image sha256, model sha256, policy) -> embedding and whether a face was detected."""

    def __init__(self, path: Path | None):
        self.db = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, found INTEGER, vector BLOB)")

    def get(self, key: str) -> tuple[bool, np.ndarray] | None:
        if self.db is None:
            return None
        row = self.db.execute("SELECT found, vector FROM embeddings WHERE key = ?", (key,)).fetchone()
        return None if row is None else (bool(row[0]), np.frombuffer(row[1], np.float32).copy())

    def put(self, key: str, found: bool, vector: np.ndarray) -> None:
        if self.db is not None:
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                                (key, int(found), vector.astype(np.float32).tobytes()))


def centre_box(shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    side = int(round(0.45 * min(h, w)))
    left, top = (w - side) // 2, (h - side) // 2
    return np.array([[left, top, left + side - 1, top + side - 1]], np.int64)


def _nearest_centre(boxes: np.ndarray, shape: tuple[int, ...]) -> int:
    """The box whose centre is nearest the image centre (LFW centres the named person)."""
    centre = np.array([shape[1] / 2, shape[0] / 2])
    return min(range(len(boxes)), key=lambda i: np.linalg.norm((boxes[i, :2] + boxes[i, 2:]) / 2 - centre))


def subject_chip(analyzer: FaceAnalyzer, image: np.ndarray) -> tuple[bool, np.ndarray]:
    """(a face was detected, the subject's aligned chip), following the module's face-not-found policy.
    The one home of that policy: evaluation embeds this chip, the precision variants calibrate and
    measure on it (``facestyle.export.datasets.lfw_chips``)."""
    for upsample in (analyzer.upsample, analyzer.upsample + 1):
        found = analyzer.detector.detect(image, upsample=upsample)
        if len(found):
            subject = _nearest_centre(found.boxes, image.shape)
            return True, analyzer.chips(image, found.boxes[subject : subject + 1])[1][0]
    return False, analyzer.chips(image, centre_box(image.shape))[1][0]


def subject_embedding(analyzer: FaceAnalyzer, image: np.ndarray) -> tuple[bool, np.ndarray]:
    """(a face was detected, the subject's embedding), following the module's face-not-found policy."""
    found, chip = subject_chip(analyzer, image)
    return found, analyzer.embedder.embed(chip[None])[0]


def embed_files(analyzer: FaceAnalyzer, files: list[Path], cache: EmbeddingCache,
                progress: bool = True) -> dict[Path, tuple[bool, np.ndarray]]:
    model_sha = analyzer.embedder.identity.sha256  # the artifact itself: a recalibrated int8 is another model
    out = {}
    with Progress(len(files), "embedding", enabled=progress) as bar:
        for path in files:
            data = path.read_bytes()
            key = f"{hashlib.sha256(data).hexdigest()}:{model_sha}:{analyzer.upsample}:{POLICY}"
            cached = cache.get(key)
            if cached is None:
                cached = subject_embedding(analyzer, load_image(data))
                cache.put(key, *cached)
            out[path] = cached
            bar.update()
    return out


def pair_distances(analyzer, pairs: list[lfw.Pair], cache: EmbeddingCache, progress: bool = True):
    files = sorted({p.a for p in pairs} | {p.b for p in pairs})
    embedded = embed_files(analyzer, files, cache, progress)
    distances = np.array([np.linalg.norm(embedded[p.a][1] - embedded[p.b][1]) for p in pairs])
    no_face = sum(not embedded[f][0] for f in files)
    return distances, no_face, len(files)


def lfw_figures(distances: np.ndarray, same: np.ndarray, folds: np.ndarray, model_threshold: float) -> dict:
    """The LFW protocol's figures from pair distances: 10-fold accuracy, TAR@FAR, the fold thresholds."""
    accuracies, thresholds = lfw.kfold_accuracy(distances, same, folds)
    at_far = {str(far): lfw.tar_at_far(distances, same, far) for far in FARS}
    return {
        "accuracy": float(accuracies.mean()),
        "std": float(accuracies.std()),
        "threshold": float(thresholds.mean()),
        "fold_thresholds": [round(float(t), 6) for t in thresholds],
        "accuracy_at_model_threshold": float(np.mean((distances <= model_threshold) == same)),
        "model_threshold": model_threshold,
        "tar_at_far": {far: tar for far, (tar, _) in at_far.items()},
        "threshold_at_far": {far: t for far, (_, t) in at_far.items()},
        "pairs": len(distances),
    }


def evaluate_lfw(analyzer: FaceAnalyzer, root: Path, pairs_file: Path, cache: EmbeddingCache, progress: bool = True) -> dict:
    started = time.perf_counter()
    pairs = lfw.read_pairs(pairs_file, root)
    distances, no_face, images = pair_distances(analyzer, pairs, cache, progress)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    return {
        **lfw_figures(distances, same, folds, analyzer.threshold),
        "images": images,
        "no_face": no_face,
        "no_face_policy": POLICY,
        "pairs_file": str(pairs_file),
        "seconds": round(time.perf_counter() - started, 1),
        "_roc": lfw.roc_curve(distances, same),
    }
