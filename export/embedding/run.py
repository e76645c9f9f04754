"""One ``train-embedding`` run from start to export: the training and held-out data, the training, the check that
the trained model is no worse on the held-out pairs than where it started, the threshold and the similarity head
fitted on training pairs, and the export that ``--model RUN`` uses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facestyle.errors import TrainingRegressionError
from facestyle.train_config import EmbeddingTrainConfig

from .data import FaceSet, training_pairs
from .train import EmbeddingTrainer, HeldOut

HELD_OUT_FRACTION = 0.1  # of the identities, when no held-out pairs file is given
HELD_OUT_PAIRS = 300  # at most this many same and as many different pairs among the held-out identities
CALIBRATION_PAIRS = 1000  # at most this many same and as many different training pairs for the threshold and head
# A trained model is worse than its start when its held-out accuracy fell by more than ACCURACY_SLACK (or two
# standard errors of the start's accuracy on that many pairs, where they are few), or when the spread of its
# embeddings (the median distance between two people) fell below SPREAD_KEPT of the start's: the signature of
# an embedding collapsing towards one point, which a threshold calibrated on it hides.
ACCURACY_SLACK = 0.01
SPREAD_KEPT = 0.5


@dataclass(frozen=True)
class TrainingData:
    """Where the photos are. ``aligned``: aligned 150x150 chips already; ``identities``: a pairs file or name list
    whose identities are kept; ``eval_pairs``/``eval_root``: held-out pairs (LFW format) and their photos."""

    data: Path
    aligned: bool = False
    identities: Path | None = None
    eval_pairs: Path | None = None
    eval_root: Path | None = None
    chip_cache: Path | None = None


def held_out_identities(faces: FaceSet, seed: int) -> tuple[FaceSet, HeldOut]:
    """(training faces, held-out pairs): ``HELD_OUT_FRACTION`` of the identities (2 at least) set aside."""
    rng = np.random.default_rng(seed)
    count = max(2, int(len(faces.names) * HELD_OUT_FRACTION))
    held = set(rng.choice(len(faces.names), count, replace=False).tolist())
    kept = np.array([label not in held for label in faces.labels])
    held_faces = subset(faces, ~kept)
    a, b, same = training_pairs(held_faces, HELD_OUT_PAIRS, seed)
    return subset(faces, kept), HeldOut(held_faces, a, b, same, np.arange(len(a)) % 10)


def subset(faces: FaceSet, mask: np.ndarray) -> FaceSet:
    return FaceSet(faces.chips[mask], faces.labels[mask], faces.names, [f for f, m in zip(faces.files, mask) if m])


def held_out_pairs(pairs_file: Path, root: Path, cache) -> HeldOut:
    """The pairs of an LFW-format file, their photos under ``root`` (``cache`` None: aligned chips already)."""
    from facestyle.face.lfw import read_pairs
    from facestyle.images import load_image

    pairs = read_pairs(pairs_file, root)
    files = sorted({p.a for p in pairs} | {p.b for p in pairs})
    index = {f: i for i, f in enumerate(files)}
    chips = np.stack([load_image(f) if cache is None else cache.chip(f)[1] for f in files])
    faces = FaceSet(chips, np.zeros(len(files), int), [], [str(f) for f in files])
    return HeldOut(faces, np.array([index[p.a] for p in pairs]), np.array([index[p.b] for p in pairs]),
                   np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]))


def load_data(data: TrainingData, engines: Path | None, seed: int, progress: bool) -> tuple[FaceSet, HeldOut]:
    """(training faces, held-out pairs), photos aligned by facestyle's own pipeline unless ``data.aligned``."""
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.evaluation import default_cache_path

    from .data import ChipCache, identity_names, load_face_set

    cache = None if data.aligned else ChipCache(data.chip_cache or default_cache_path().parent / "chips",
                                                lambda: FaceAnalyzer.from_engines(engines))
    only = identity_names(data.identities) if data.identities else None
    faces = load_face_set(data.data, cache, only, progress=progress)
    if data.eval_pairs:
        return faces, held_out_pairs(data.eval_pairs, data.eval_root or data.data, cache)
    return held_out_identities(faces, seed)


def train_embedding(config: EmbeddingTrainConfig, data: TrainingData, out: Path, engines: Path | None = None,
                    resume: bool = False, progress: bool = True) -> dict:
    """Train, check, calibrate and export; the summary (held-out figures at the start and the end included)."""
    from facestyle.progress import Progress

    train, held_out = load_data(data, engines, config.seed, progress)
    trainer = EmbeddingTrainer(train, held_out, out, config)
    start = trainer.resume() if resume else 0
    with Progress(trainer.config.max_steps - start, "training", enabled=progress) as bar:
        trainer.run(bar)
    return finish(trainer, f"{len(train)} chips of {len(set(train.labels.tolist()))} identities from {data.data}")


def finish(trainer: EmbeddingTrainer, data_description: str) -> dict:
    """Refuse a model worse than its start (unless ``force``); else the threshold and head on training pairs,
    their held-out figures, and the export."""
    from .deploy import export_trained

    vectors = trainer.embed(trainer.held_out.faces.chips)
    end = trainer.evaluate(vectors=vectors)
    held = {"pairs": trainer.held_out.pair_counts, "start": figures_of(trainer.start), "end": figures_of(end)}
    check_not_worse(held, trainer.config.force)
    pairs = trainer.training_pair_embeddings(CALIBRATION_PAIRS)
    threshold = trainer.calibrated_threshold(pairs)
    calibration = {"same": int(pairs[2].sum()), "different": int((~pairs[2]).sum())}
    summary = {"steps": trainer.step, "seconds": round(trainer.seconds), "held_out": held,
               "eval": trainer.evaluate(threshold, vectors), "threshold": threshold, "calibration_pairs": calibration}
    head = None
    if trainer.config.head != "none":
        head, summary["head"] = fitted_head(trainer, pairs, threshold, vectors)
    summary["model"] = str(export_trained(trainer, threshold, calibration, trainer.train_set.chips, data_description,
                                          head, pairs[:2], summary.get("head")))
    return summary


def figures_of(entry: dict | None) -> dict | None:
    return None if entry is None else {"step": entry["step"], "accuracy": entry["accuracy"], "spread": entry["spread"]}


def check_not_worse(held: dict, force: bool) -> None:
    """TrainingRegressionError where the end's held-out figures are worse than the start's, unless ``force``.
    Figures that are not numbers (weights gone to NaN) count as worse."""
    start, end = held["start"], held["end"]
    if start is None or force:
        return
    fell = not end["accuracy"] >= start["accuracy"] - accuracy_slack(start["accuracy"], sum(held["pairs"].values()))
    collapsed = not end["spread"] >= SPREAD_KEPT * start["spread"]
    if not (fell or collapsed):
        return
    pairs = held["pairs"]
    raise TrainingRegressionError(
        f"the trained model is worse than its start on the {pairs['same']} same + {pairs['different']} different "
        f"held-out pairs (accuracy {start['accuracy']:.4f} -> {end['accuracy']:.4f}, spread {start['spread']:.4g} -> "
        f"{end['spread']:.4g} at step {end['step']}); not exported: lower --lr or train fewer steps, or pass --force "
        "to export it anyway")


def accuracy_slack(accuracy: float, pairs: int) -> float:
    """How far the accuracy on ``pairs`` pairs may fall before it counts as worse: the larger of ACCURACY_SLACK and
    two standard errors (the variance floored at one pair's worth, so that a perfect start still allows one miss)."""
    return max(ACCURACY_SLACK, 2 * math.sqrt(max(accuracy * (1 - accuracy), 1 / pairs) / pairs))


def fitted_head(trainer: EmbeddingTrainer, pairs, threshold: float, vectors: np.ndarray):
    """(the similarity head fitted on the training pairs, its held-out figures beside the threshold's)."""
    from .head import fit_head, head_probabilities

    form = trainer.config.head
    head = fit_head(*pairs, form)
    h = trainer.held_out
    p = head_probabilities(head, vectors[h.a], vectors[h.b])
    d = np.linalg.norm(vectors[h.a] - vectors[h.b], axis=1)
    return head, {"form": form, "held_out_accuracy": round(float(np.mean((p >= 0.5) == h.same)), 4),
                  "threshold_held_out_accuracy": round(float(np.mean((d <= threshold) == h.same)), 4)}
