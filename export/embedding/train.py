"""``facestyle train-embedding``: triplet-loss training with online mining on PK batches, evaluated on held-out
pairs as it goes, resumable exactly, and exported at the end through the same ONNX path as dlib's model.

A run folder holds everything: ``checkpoint.pt`` (tensors only, read back with ``weights_only=True``),
``loss.jsonl`` (per step), ``eval.jsonl`` (per evaluation), and at the end ``engines/face-embed/fp32.onnx``
with its manifest (threshold calibrated on training pairs; the similarity head, if fitted, beside it as
``head.onnx``), which ``--model RUN`` points every face command at.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facestyle.errors import BadInputError
from facestyle.manifest import atomic_write_bytes
from facestyle.train_config import RESUMABLE_CHANGES, EmbeddingTrainConfig

from .data import FaceSet, pk_batch, training_pairs
from .triplet import mined_loss

# dlib's input normalisation, which every trained model keeps so the runtime treats it like dlib's
DLIB_MEAN = (122.782, 117.001, 104.298)
SCALE = 1.0 / 256.0


@dataclass(frozen=True)
class HeldOut:
    """The faces and pairs a run is judged on, never trained on."""

    faces: FaceSet
    a: np.ndarray  # (pairs,) index into faces
    b: np.ndarray
    same: np.ndarray  # (pairs,) bool
    folds: np.ndarray  # (pairs,) fold of the 10-fold accuracy

    @property
    def pair_counts(self) -> dict:
        return {"same": int(self.same.sum()), "different": int((~self.same).sum())}


def normalise_chips(chips: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 -> (N, 3, 150, 150) float32 with dlib's mean and scale."""
    x = (chips.astype(np.float32) - np.asarray(DLIB_MEAN, np.float32)) * np.float32(SCALE)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class EmbeddingTrainer:
    """Trains ``config`` (its per-run defaults resolved for ``train``) on ``train``, judged on ``held_out``."""

    def __init__(self, train: FaceSet, held_out: HeldOut | None, out_dir: str | Path, config: EmbeddingTrainConfig):
        import torch

        from .archs import ARCHS, Normalised

        config = config.resolved(len(train))
        self.torch, self.train_set, self.held_out, self.config = torch, train, held_out, config
        self.out = Path(out_dir)
        torch.manual_seed(config.seed)
        net = ARCHS[config.arch](config.init)
        self.model = Normalised(net) if config.normalize else net
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.step, self.seconds = 0, 0.0
        self.start: dict | None = None  # the held-out figures before the first step

    # -- persistence ------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        import io

        buffer = io.BytesIO()
        self.torch.save({"step": self.step, "seconds": self.seconds, "model": self.model.state_dict(),
                         "optimiser": self.optimiser.state_dict(), "config": json.dumps(asdict(self.config)),
                         "start": json.dumps(self.start)}, buffer)
        atomic_write_bytes(self.checkpoint_path, buffer.getvalue())

    def resume(self) -> int:
        """Continue from ``checkpoint.pt`` (refused if it was trained with other settings); the step it resumes at."""
        if not self.checkpoint_path.exists():
            return 0
        state = self.torch.load(self.checkpoint_path, weights_only=True)
        saved, mine = json.loads(state["config"]), asdict(self.config)
        differing = sorted(k for k in mine if k not in RESUMABLE_CHANGES and mine[k] != saved.get(k, mine[k]))
        if differing:
            raise BadInputError(f"checkpoint {self.checkpoint_path} was trained with other settings "
                                f"({', '.join(differing)}); use a new --out folder or the same settings")
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.start = json.loads(state["start"]) if "start" in state else None
        for log in ("loss.jsonl", "eval.jsonl"):  # lines written after the checkpoint would repeat
            path = self.out / log
            if path.exists():
                kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= self.step]
                atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())
        return self.step

    # -- training ---------------------------------------------------------------------------------
    def train_step(self) -> dict:
        c = self.config
        chips, labels = pk_batch(self.train_set, c.identities_per_batch, c.images_per_identity, c.seed, self.step)
        self.model.train()
        self.optimiser.zero_grad()
        embeddings = self.model(self.torch.from_numpy(normalise_chips(chips)))
        loss, mined = mined_loss(embeddings, self.torch.from_numpy(labels), c.mining, c.margin)
        if mined:
            loss.backward()
            self.optimiser.step()
        self.step += 1
        return {"step": self.step, "loss": round(float(loss.detach()), 6), "triplets": mined}

    def embed(self, chips: np.ndarray) -> np.ndarray:
        self.model.eval()
        with self.torch.no_grad():
            return np.concatenate([self.model(self.torch.from_numpy(normalise_chips(chips[i:i + 64]))).numpy()
                                   for i in range(0, len(chips), 64)])

    def evaluate(self, threshold: float | None = None, vectors: np.ndarray | None = None) -> dict:
        """Held-out pairs: 10-fold accuracy, TAR@FAR, the spread (median distance of the different-identity
        pairs: near 0 when every face maps near one point), and the accuracy at ``threshold``, when given.
        ``vectors``: the held-out faces' embeddings, where the caller has them already."""
        from facestyle.face.evaluation import lfw_figures

        h = self.held_out
        vectors = self.embed(h.faces.chips) if vectors is None else vectors
        distances = np.linalg.norm(vectors[h.a] - vectors[h.b], axis=1)
        figures = lfw_figures(distances, h.same, h.folds, np.nan if threshold is None else threshold)
        entry = {"step": self.step, "accuracy": round(figures["accuracy"], 4),
                 "tar_at_far_0.001": round(figures["tar_at_far"]["0.001"], 4),
                 "spread": round(float(np.median(distances[~h.same])), 6), "pairs": figures["pairs"]}
        if threshold is not None:
            entry["accuracy_at_train_threshold"] = round(figures["accuracy_at_model_threshold"], 4)
        return entry

    def training_pair_embeddings(self, count: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings of a, of b, same) for up to ``count`` distinct same and ``count`` different training pairs."""
        a, b, same = training_pairs(self.train_set, count, self.config.seed)
        used = np.unique(np.r_[a, b])
        embedded = self.embed(self.train_set.chips[used])
        vectors = np.zeros((len(self.train_set), embedded.shape[1]), np.float32)
        vectors[used] = embedded
        return vectors[a], vectors[b], same

    def calibrated_threshold(self, pairs=None) -> float:
        """The threshold with the best accuracy on the training pairs (``training_pair_embeddings``)."""
        from facestyle.face.lfw import best_threshold

        va, vb, same = pairs or self.training_pair_embeddings()
        return best_threshold(np.linalg.norm(va - vb, axis=1), same)

    def run(self, progress=None) -> dict:
        """Train up to ``max_steps``, logging, evaluating and checkpointing on the way; the last evaluation."""
        self.out.mkdir(parents=True, exist_ok=True)
        last: dict = {}
        with open(self.out / "loss.jsonl", "a") as losses, open(self.out / "eval.jsonl", "a") as evals:
            if self.held_out and self.step == 0:  # where it starts: dlib's weights, or chance
                last = self.start = self.evaluate()
                evals.write(json.dumps(last) + "\n")
                evals.flush()
            while self.step < self.config.max_steps:
                started = time.perf_counter()
                entry = self.train_step()
                self.seconds += time.perf_counter() - started
                losses.write(json.dumps({**entry, "seconds": round(self.seconds, 2)}) + "\n")
                losses.flush()
                if progress:
                    progress.update(1, f"loss {entry['loss']:.4f} triplets {entry['triplets']}")
                done = self.step == self.config.max_steps
                if self.held_out and (self.step % self.config.eval_every == 0 or done):
                    last = self.evaluate()
                    evals.write(json.dumps(last) + "\n")
                    evals.flush()
                if self.step % self.config.checkpoint_every == 0 or done:
                    self.save_checkpoint()
        return last
