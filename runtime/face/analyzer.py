"""The face pipeline for apps: decode -> detect -> 5 landmarks -> aligned chip -> embedding.

>>> analyzer = FaceAnalyzer.from_engines("engines")
>>> faces = analyzer.faces("group.jpg")             # boxes, scores, landmarks, embeddings
>>> result = analyzer.verify("a.jpg", "b.jpg")      # distance vs the manifest's threshold
>>> analyzer.close()                                # or: with FaceAnalyzer.from_engines(...) as analyzer:
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NoFaceError
from ..images import load_image
from ..loading import Closeable
from .align import extract_face_chips
from .detector import FaceDetector
from .embedder import FaceEmbedder
from .landmarks import ShapePredictor

__all__ = ["Face", "FaceAnalyzer", "Verification"]


@dataclass
class Face:
    box: np.ndarray  # (4,) int [left, top, right, bottom], inclusive like dlib
    score: float
    landmarks: np.ndarray  # (5, 2) int, dlib's 5-point order
    embedding: np.ndarray  # (128,) float32
    chip: np.ndarray | None = field(default=None, repr=False)  # the aligned face the embedding was made from

    @property
    def area(self) -> int:
        left, top, right, bottom = (int(v) for v in self.box)
        return (right - left + 1) * (bottom - top + 1)

    def to_json(self) -> dict:
        return {
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 6),
            "landmarks": [[int(x), int(y)] for x, y in self.landmarks],
            "embedding": [float(v) for v in self.embedding],
        }


@dataclass
class Verification:
    distance: float
    threshold: float
    threshold_source: str
    same: bool
    faces: tuple[int, int]  # faces found in a and in b
    notes: list[str] = field(default_factory=list)
    compared: tuple = ()  # the two Faces compared (the largest of each photo)

    def to_json(self) -> dict:
        return {
            "distance": round(self.distance, 6),
            "threshold": self.threshold,
            "same": self.same,
            "threshold_source": self.threshold_source,
            "faces": {"a": self.faces[0], "b": self.faces[1]},
            "notes": self.notes,
        }


class FaceAnalyzer(Closeable):
    def __init__(self, detector: FaceDetector, landmarks: ShapePredictor, embedder: FaceEmbedder, upsample: int = 0):
        self.detector, self.landmarks, self.embedder = detector, landmarks, embedder
        self.upsample = upsample

    @classmethod
    def from_engines(
        cls, engines_dir: str | Path | None = None, precision: str = "fp32", upsample: int = 0, threshold: float | None = None,
        backend: str | None = None, embedder_engines: str | Path | None = None, detector_precision: str = "fp32",
    ) -> "FaceAnalyzer":
        """``backend``: None (onnxruntime on the CPU) or a kind of ``facestyle.backends.select.KINDS`` ("auto", ...).
        ``embedder_engines``: where the embedding model is, when not beside the detector (a trained run's engines).
        ``detector_precision``: fp32 (dlib's boxes exactly) or a built variant such as int8 (faster, measured)."""
        return cls(
            FaceDetector.from_engines(engines_dir, precision=detector_precision, backend=backend),
            ShapePredictor.from_engines(engines_dir),
            FaceEmbedder.from_engines(embedder_engines or engines_dir, precision=precision, threshold=threshold,
                                      backend=backend),
            upsample,
        )

    @property
    def threshold(self) -> float:
        return self.embedder.threshold

    def close(self) -> None:
        """Release the detector's and the embedder's backends (the landmarks hold none). Idempotent."""
        self.detector.close()
        self.embedder.close()

    @staticmethod
    def _pixels(image) -> np.ndarray:
        return image if isinstance(image, np.ndarray) else load_image(image)

    def chips(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(landmarks (N, 5, 2), chips (N, 150, 150, 3)) for the given boxes."""
        h, w = self.embedder.input_size
        if len(boxes) == 0:
            return np.zeros((0, 5, 2), np.int64), np.zeros((0, h, w, 3), np.uint8)
        points = self.landmarks.predict(image, boxes)
        return points, extract_face_chips(image, points, size=w)

    def faces_batch(self, images, upsample: int | None = None) -> list[list[Face]]:
        """Every face of every image; the chips of all images are embedded in one batched call."""
        upsample = self.upsample if upsample is None else upsample
        found = []
        for image in images:
            pixels = self._pixels(image)
            detections = self.detector.detect(pixels, upsample=upsample)
            points, chips = self.chips(pixels, detections.boxes)
            found.append((detections, points, chips))
        embeddings = self.embedder.embed(np.concatenate([c for *_, c in found])) if found else []
        out, start = [], 0
        for detections, points, chips in found:
            n = len(chips)
            out.append([Face(detections.boxes[i], float(detections.scores[i]), points[i], embeddings[start + i], chips[i])
                        for i in range(n)])
            start += n
        return out

    def faces(self, image, upsample: int | None = None) -> list[Face]:
        return self.faces_batch([image], upsample)[0]

    def verify(self, a, b, threshold: float | None = None) -> Verification:
        """Same person? Uses the largest face of each photo, and says so when a photo has several."""
        named = ((image if isinstance(image, (str, Path)) else f"image {label}", image) for label, image in (("a", a), ("b", b)))
        return self.compare_largest(((name, self.faces(image)) for name, image in named), threshold)

    def compare_largest(self, named_faces, threshold: float | None = None,
                        given_source: str = "--threshold given on the command line") -> Verification:
        """The largest face of each of two ``(name, faces)`` compared; ``named_faces`` may be lazy (the
        second photo is then only analysed once the first has a face). ``given_source`` says where a
        ``threshold`` given by the caller came from."""
        notes, chosen = [], []
        for name, faces in named_faces:
            if not faces:
                raise NoFaceError(f"{name}: no face found (upsample {self.upsample}); nothing to verify")
            if len(faces) > 1:
                notes.append(f"{name}: {len(faces)} faces found, using the largest")
            chosen.append((max(faces, key=lambda f: f.area), len(faces)))
        (face_a, count_a), (face_b, count_b) = chosen
        distance = float(np.linalg.norm(face_a.embedding - face_b.embedding))
        t = self.threshold if threshold is None else float(threshold)
        source = self.embedder.threshold_source if threshold is None else given_source
        return Verification(distance, t, source, distance <= t, (count_a, count_b), notes, (face_a, face_b))
