"""The learned similarity head of a trained embedding: P(same | a, b) from two embeddings, an ONNX file beside the
embedding's and described by its manifest (``"head"``: artifact, sha256, form), so nothing about it is guessed."""

from __future__ import annotations

import numpy as np

from ..backends.onnxruntime import OnnxRuntimeBackend
from ..errors import BadInputError
from ..loading import RunsOnBackend
from ..manifest import artifact_of


class SimilarityHead(RunsOnBackend):
    def __init__(self, backend, form: str, threshold: float = 0.5):
        self.backend = backend.activate()
        self.form, self.threshold = form, threshold

    @classmethod
    def of_embedder(cls, embedder) -> SimilarityHead:
        """The head recorded in the embedder's manifest (a model from ``facestyle train-embedding``)."""
        manifest, manifest_file = getattr(embedder, "manifest", None) or {}, getattr(embedder, "manifest_file", None)
        head = manifest.get("head")
        if head is None:
            raise BadInputError(f"--head: the embedding model {manifest_file or 'in use'} has no similarity head "
                                "(train-embedding --head abs fits one; dlib's model has none)")
        return cls(OnnxRuntimeBackend(artifact_of(manifest_file, head)), head["form"], head.get("probability_threshold", 0.5))

    def probability(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(N, D) and (N, D) embeddings -> (N,) probabilities that each pair is the same person."""
        a, b = np.atleast_2d(np.asarray(a, np.float32)), np.atleast_2d(np.asarray(b, np.float32))
        return self.backend.infer({"a": a, "b": b})["probability"]
