"""FaceEmbedder: aligned face chips in, 128-d embeddings out, preprocessing read from the model."""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backends.base import Backend
from ..backends.onnxruntime import OnnxRuntimeBackend
from ..batching import MicroBatcher
from ..contract import EmbeddingContract
from ..errors import BadImageError, BatcherClosedError, ModelFormatError
from ..kinds import KINDS
from ..loading import RunsOnBackend, load_built
from ..manifest import ModelIdentity, file_sha256

MODEL_NAME = KINDS["face-embed"].name  # its folder in the engines directory

# How long embed_async holds a batch open for more chips: short next to one inference (tens of ms).
ASYNC_MAX_DELAY_MS = 5.0
ASYNC_MAX_QUEUE = 1024
_ASYNC_BATCHER_LOCK = threading.Lock()  # makes the lazy creation of each embedder's batcher race-free
MODEL_DEFAULT_SOURCE = "model metadata (dlib's default)"


@dataclass(frozen=True)
class Threshold:
    """A distance threshold and where it came from (the model, its manifest, the caller)."""

    value: float
    source: str

    def unless_given(self, given: float | None, given_source: str) -> Threshold:
        """The one rule: a threshold the caller gives wins, and says where it came from; else this one."""
        return self if given is None else Threshold(float(given), given_source)


class FaceEmbedder(RunsOnBackend):
    """Embeds batches of aligned chips (dlib's ``get_face_chip``, 150x150 RGB uint8).

    >>> embedder = FaceEmbedder.from_engines("engines")
    >>> vectors = embedder.embed(chips)          # (N, 150, 150, 3) uint8 -> (N, 128) float32
    >>> same = embedder.distance(vectors[0], vectors[1]) <= embedder.threshold
    """

    def __init__(
        self,
        backend: Backend,
        max_batch: int = 32,
        threshold: float | None = None,
        threshold_source: str | None = None,
        source: str = "model",
        precision: str = "fp32",
        sha256: str | None = None,
    ):
        """``sha256``: the artifact's, as its loader hashed it; it makes :attr:`identity` (None: unknown)."""
        self.backend = backend.activate()
        self.contract = EmbeddingContract.from_metadata(backend.metadata, source)
        self.max_batch = max_batch
        self.precision = precision
        self.source = source
        rule = Threshold(self.contract.threshold, MODEL_DEFAULT_SOURCE).unless_given(
            threshold, threshold_source or "given by the caller")
        self.threshold, self.threshold_source = rule.value, rule.source
        self._identity = None if sha256 is None else ModelIdentity(self.contract.model, precision, sha256)
        self._mean = np.asarray(self.contract.channel_mean, np.float32)

    @classmethod
    def from_onnx(cls, path: str | Path, providers=("CPUExecutionProvider",), **kwargs) -> FaceEmbedder:
        kwargs.setdefault("sha256", file_sha256(path))  # a bare ONNX has no manifest: hashed here, once
        return cls(OnnxRuntimeBackend(path, providers), source=str(path), **kwargs)

    @classmethod
    def from_engines(
        cls, engines_dir: str | Path | None = None, precision: str = "fp32", providers=("CPUExecutionProvider",),
        backend: str | None = None, **kwargs
    ) -> FaceEmbedder:
        """Load the artifact that ``facestyle build`` wrote, checked against its manifest.

        The manifest's threshold (measured on LFW at build time) wins over the model's default
        unless the caller gives one.
        """
        loaded = load_built(engines_dir, MODEL_NAME, precision, providers, backend)
        if kwargs.get("threshold") is None and "threshold" in loaded.manifest:
            kwargs["threshold"] = loaded.manifest["threshold"]
            kwargs["threshold_source"] = (
                f"manifest {loaded.manifest_file}: {loaded.manifest.get('threshold_source', 'unspecified')}")
        embedder = cls(loaded.backend, source=str(loaded.artifact), precision=loaded.manifest["precision"],
                       sha256=loaded.sha256, **kwargs)
        embedder.manifest, embedder.manifest_file = loaded.manifest, loaded.manifest_file
        return embedder

    @property
    def threshold_rule(self) -> Threshold:
        return Threshold(self.threshold, self.threshold_source)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.contract.input_size

    def preprocess(self, chips: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> the model's normalised NCHW float32, as its contract says."""
        if self.contract.channel_order == "BGR":
            chips = chips[..., ::-1]
        x = (chips.astype(np.float32) - self._mean) * np.float32(self.contract.scale)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Embed one chip (H, W, 3) or a batch (N, H, W, 3) of uint8 RGB chips; returns (N, 128) float32."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        h, w = self.input_size
        if chips.ndim != 4 or chips.shape[1:] != (h, w, 3) or chips.dtype != np.uint8:
            raise BadImageError(
                f"face chips: expected uint8 (N, {h}, {w}, 3) RGB, got {chips.dtype}{list(chips.shape)}"
            )
        out = [
            self.backend.infer({self.contract.input_name: self.preprocess(chips[i : i + self.max_batch])})[
                self.contract.output_name
            ]
            for i in range(0, len(chips), self.max_batch)
        ]
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)

    @property
    def identity(self) -> ModelIdentity:
        """What produced these embeddings (model, precision, artifact sha256, as loaded): galleries record it."""
        if self._identity is None:
            raise ModelFormatError(f"{self.source}: the artifact's sha256 was not given, so what these embeddings "
                                   "come from is unknown; load it with from_engines or from_onnx")
        return self._identity

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)

    def embed_async(self, chip: np.ndarray, timeout: float | None = None) -> Future:
        """Embed one aligned chip (H, W, 3) uint8 RGB from any thread; the future gives its (128,) vector.

        Chips from concurrent callers are embedded together in batches (up to ``max_batch``, within
        ASYNC_MAX_DELAY_MS of the first), by one MicroBatcher per embedder. A chip of the wrong shape
        or type raises BadImageError here, at once. When ASYNC_MAX_QUEUE chips are waiting, the call
        blocks for room (up to ``timeout`` seconds, then BatcherFullError). After ``close()`` it raises
        BatcherClosedError.
        """
        chip = np.asarray(chip)
        return self.async_batcher.submit(chip, timeout=timeout)

    @property
    def async_batcher(self) -> MicroBatcher:
        """The batcher behind ``embed_async`` (created on first use); its ``stats()`` serve benchmarks."""
        with _ASYNC_BATCHER_LOCK:
            if getattr(self, "_async_closed", False):
                raise BatcherClosedError("face embedder: closed, embed_async takes no more chips")
            if getattr(self, "_async_batcher", None) is None:
                self._async_batcher = _start_async_batcher(self)
            return self._async_batcher

    def close(self) -> None:
        """Embed the chips already queued by embed_async, then release the backend. Idempotent."""
        with _ASYNC_BATCHER_LOCK:
            self._async_closed = True
            batcher = getattr(self, "_async_batcher", None)
        if batcher is not None:
            batcher.close()
        super().close()


def _start_async_batcher(embedder: FaceEmbedder) -> MicroBatcher:
    """The MicroBatcher behind ``embed_async``, holding the embedder only weakly.

    A strong reference would keep a forgotten embedder (and its worker thread) alive for ever;
    this way, dropping the embedder closes its batcher, and no thread is left behind.
    """
    embedder_ref = weakref.ref(embedder)
    h, w = embedder.input_size

    def check_chip(chip: np.ndarray) -> None:
        if chip.shape != (h, w, 3) or chip.dtype != np.uint8:
            raise BadImageError(f"face chip: expected uint8 ({h}, {w}, 3) RGB, got {chip.dtype}{list(chip.shape)}")

    def embed_chips(chips: list[np.ndarray]) -> np.ndarray:
        alive = embedder_ref()
        if alive is None:
            raise BatcherClosedError("face embedder: garbage-collected before these chips were embedded")
        return alive.embed(np.stack(chips))

    batcher = MicroBatcher(
        embed_chips,
        max_batch=embedder.max_batch,
        max_delay_ms=ASYNC_MAX_DELAY_MS,
        max_queue=ASYNC_MAX_QUEUE,
        when_full="block",
        check_item=check_chip,
        name="face-embedder",
    )
    weakref.finalize(embedder, batcher.close)
    return batcher
