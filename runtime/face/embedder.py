"""FaceEmbedder: aligned face chips in, 128-d embeddings out, preprocessing read from the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backends.base import Backend
from ..backends.onnxruntime import OnnxRuntimeBackend
from ..contract import EmbeddingContract
from ..errors import BadImageError
from ..manifest import artifact_of, default_engines_dir, read_manifest

MODEL_NAME = "face-embed"



class FaceEmbedder:
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
    ):
        self.backend = backend.activate()
        self.contract = EmbeddingContract.from_metadata(backend.metadata, source)
        self.max_batch = max_batch
        self.precision = "fp32"
        if threshold is None:
            self.threshold, self.threshold_source = self.contract.threshold, "model metadata (dlib's default)"
        else:
            self.threshold, self.threshold_source = float(threshold), threshold_source or "given by the caller"
        self._mean = np.asarray(self.contract.channel_mean, np.float32)

    @classmethod
    def from_onnx(cls, path: str | Path, providers=("CPUExecutionProvider",), **kwargs) -> "FaceEmbedder":
        return cls(OnnxRuntimeBackend(path, providers), source=str(path), **kwargs)

    @classmethod
    def from_engines(
        cls, engines_dir: str | Path | None = None, precision: str = "fp32", providers=("CPUExecutionProvider",), **kwargs
    ) -> "FaceEmbedder":
        """Load the artifact that ``facestyle build`` wrote, checked against its manifest."""
        manifest_file = Path(engines_dir or default_engines_dir()) / MODEL_NAME / f"{precision}.manifest.json"
        manifest = read_manifest(manifest_file)
        if kwargs.get("threshold") is None and "threshold" in manifest:
            kwargs["threshold"] = manifest["threshold"]
            kwargs["threshold_source"] = f"manifest {manifest_file}: {manifest.get('threshold_source', 'unspecified')}"
        embedder = cls.from_onnx(artifact_of(manifest_file, manifest), providers, **kwargs)
        embedder.precision = manifest["precision"]
        return embedder

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
    def identity(self):
        """What produced these embeddings (model, precision, artifact sha256): galleries record it."""
        from ..manifest import file_sha256
        from .gallery import ModelIdentity

        if getattr(self, "_identity", None) is None:
            self._identity = ModelIdentity(self.contract.model, self.precision, file_sha256(self.backend.model_path))
        return self._identity

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)

    def close(self) -> None:
        self.backend.deactivate()
