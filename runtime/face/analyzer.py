"""The face pipeline for apps: decode -> detect -> 5 landmarks -> aligned chip -> embedding.

>>> analyzer = FaceAnalyzer.from_engines("engines")
>>> faces = analyzer.faces("group.jpg")             # boxes, scores, landmarks, embeddings
>>> result = analyzer.verify("a.jpg", "b.jpg")      # distance vs the manifest's threshold
>>> found = analyzer.identify(gallery, "door.jpg")  # PhotoIdentification: faces, threshold, timings
>>> analyzer.close()                                # or: with FaceAnalyzer.from_engines(...) as analyzer:

The pipeline is written once, here. Its embed step is pluggable (:class:`EmbedStep`): the in-process
``FaceEmbedder``, the same over a Triton model (``facestyle.triton``), or the HTTP service's micro-batcher
in front of one (:meth:`FaceAnalyzer.with_embedder`). What is asked of found faces (verify, identify, the
threshold rule) is written once too, in :class:`FaceApi`, which the Triton client shares.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import NoFaceError
from ..images import load_image
from ..loading import Closeable
from ..manifest import ModelIdentity
from .align import extract_face_chips
from .detector import FaceDetector
from .embedder import FaceEmbedder, Threshold
from .landmarks import ShapePredictor
from .openset import DEFAULT_FPIR, one_to_n_threshold

__all__ = ["Aligned", "EmbedStep", "EmbedStepInFront", "Face", "FaceAnalyzer", "FaceApi", "IdentifiedFace", "PhotoIdentification",
           "STAGES", "StageClock", "Verification"]

STAGES = ("decode", "detect", "landmarks", "align", "embed", "search")  # what identify times, in order
GIVEN_ON_COMMAND_LINE = "--threshold given on the command line"
GIVEN_BY_CALLER = "threshold given by the caller"
_ONE_TO_N_LOCK = threading.Lock()  # guards each analyzer's cache of 1:N thresholds per gallery


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


@dataclass(frozen=True)
class IdentifiedFace:
    """One face of a photo: its box, its nearest enrolled people and who it is (or "unknown")."""

    box: tuple[int, int, int, int]
    matches: tuple  # gallery Matches (name, distance), nearest first
    identity: str

    def to_json(self) -> dict:
        return {"box": list(self.box),
                "matches": [{"name": m.name, "distance": round(m.distance, 6)} for m in self.matches],
                "identity": self.identity}


@dataclass
class PhotoIdentification:
    """Every face of one photo identified, the threshold used and where it came from, and the
    milliseconds each stage took (decode, detect, landmarks, align, embed, search; Triton: pipeline, search)."""

    faces: list[IdentifiedFace]
    threshold: float
    threshold_source: str
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self, timings: bool = True) -> dict:
        """What ``facestyle identify --json`` prints per photo (with ``timings``) and ``POST /v1/identify`` answers."""
        out = {"faces": [f.to_json() for f in self.faces], "threshold": self.threshold,
               "threshold_source": self.threshold_source}
        return {**out, "timings": dict(self.timings)} if timings else out


@dataclass(frozen=True)
class Aligned:
    """One image's faces found and aligned, not yet embedded: detect -> landmarks -> chips."""

    boxes: np.ndarray  # (N, 4) int
    scores: np.ndarray  # (N,)
    landmarks: np.ndarray  # (N, 5, 2) int
    chips: np.ndarray  # (N, H, W, 3) uint8

    def __len__(self) -> int:
        return len(self.chips)


class EmbedStep(Protocol):
    """What the analyzer embeds aligned chips with (``FaceEmbedder`` is one, on any backend)."""

    input_size: tuple[int, int]
    threshold: float
    threshold_source: str
    threshold_rule: Threshold
    precision: str
    identity: ModelIdentity

    def embed(self, chips: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class EmbedStepInFront:
    """An embed step in front of another (a micro-batcher, a recorder): contract, threshold and identity are the
    inner step's; a subclass overrides :meth:`embed`."""

    def __init__(self, inner: EmbedStep):
        self.inner = inner

    input_size = property(lambda self: self.inner.input_size)
    threshold = property(lambda self: self.inner.threshold)
    threshold_source = property(lambda self: self.inner.threshold_source)
    threshold_rule = property(lambda self: self.inner.threshold_rule)
    precision = property(lambda self: self.inner.precision)
    identity = property(lambda self: self.inner.identity)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        return self.inner.embed(chips)

    def close(self) -> None:
        self.inner.close()


class StageClock:
    """Adds each stage's wall time to ``timings`` (ms, to the microsecond); with no dict it only keeps time."""

    def __init__(self, timings: dict[str, float] | None = None):
        self.timings = timings
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[stage] = round(self.timings.get(stage, 0.0) + (now - self._start) * 1000, 3)
        self._start = now

    def skip(self, *stages: str) -> None:
        """Stages with nothing to do (no face): listed, with no time."""
        if self.timings is not None:
            for stage in stages:
                self.timings[stage] = self.timings.get(stage, 0.0)
        self._start = time.perf_counter()


class FaceApi(Closeable):
    """What is asked of found faces, written once: faces, verify, identify and the threshold rule.

    A subclass says how faces are found: :meth:`faces_batch` (``images`` -> the faces of each, stage
    times added to ``timings``), and has an ``embedder`` (its threshold and identity) and ``upsample``.
    """

    embedder: EmbedStep
    upsample: int

    def faces_batch(self, images, upsample: int | None = None, timings: dict | None = None) -> list[list[Face]]:
        raise NotImplementedError

    def faces(self, image, upsample: int | None = None, timings: dict | None = None) -> list[Face]:
        return self.faces_batch([image], upsample, timings)[0]

    @property
    def threshold(self) -> float:
        return self.embedder.threshold

    def threshold_for(self, given: float | None, given_source: str) -> Threshold:
        """The threshold a comparison uses: ``given`` (from ``given_source``) if any, else the embedder's
        (the manifest's, or the model's default) with its source."""
        return self.embedder.threshold_rule.unless_given(given, given_source)

    def identify_threshold(self, gallery, given: float | None = None, given_source: str = GIVEN_BY_CALLER,
                           fpir: float = DEFAULT_FPIR) -> Threshold:
        """The threshold that names a face against ``gallery``: ``given`` (from ``given_source``) if any, else a
        1:N threshold for the gallery's size at false identification rate ``fpir``, never looser than the pair
        threshold (:mod:`.openset`). Worked out again only when the gallery's contents change."""
        if given is not None:
            return Threshold(float(given), given_source)
        pair = self.embedder.threshold_rule
        matrix = gallery.matrix()
        n = matrix.n  # enrolments may extend the matrix meanwhile: the first n rows are a consistent snapshot
        stamp = (id(matrix), matrix.key, n, int(matrix.ids[n - 1]) if n else -1, pair, fpir)
        with _ONE_TO_N_LOCK:
            cache = self.__dict__.setdefault("_one_to_n", weakref.WeakKeyDictionary())
            cached = cache.get(gallery)
        if cached is None or cached[0] != stamp:  # two threads may both work it out: the same answer
            found = one_to_n_threshold(matrix.vectors[:n], matrix.owner[:n], pair.value, pair.source, fpir)
            cached = (stamp, Threshold(found.value, found.source))
            with _ONE_TO_N_LOCK:
                cache[gallery] = cached
        return cached[1]

    def verify(self, a, b, threshold: float | None = None) -> Verification:
        """Same person? Uses the largest face of each photo, and says so when a photo has several."""
        named = ((image if isinstance(image, (str, Path)) else f"image {label}", image) for label, image in (("a", a), ("b", b)))
        return self.compare_largest(((name, self.faces(image)) for name, image in named), threshold)

    def compare_largest(self, named_faces, threshold: float | None = None,
                        given_source: str = GIVEN_ON_COMMAND_LINE) -> Verification:
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
        rule = self.threshold_for(threshold, given_source)
        return Verification(distance, rule.value, rule.source, distance <= rule.value, (count_a, count_b), notes,
                            (face_a, face_b))

    def identify(self, gallery, image, top_k: int = 3, threshold: float | None = None,
                 given_source: str = GIVEN_BY_CALLER) -> PhotoIdentification:
        """Every face of a photo with its nearest enrolled people and its identity (or "unknown"), timed."""
        timings: dict[str, float] = {}
        return self.identify_faces(gallery, self.faces(image, timings=timings), top_k, threshold, given_source, timings)

    def identify_faces(self, gallery, faces: list[Face], top_k: int = 3, threshold: float | None = None,
                       given_source: str = GIVEN_BY_CALLER, timings: dict | None = None) -> PhotoIdentification:
        """Faces already found, searched in ``gallery``: the one place an identify result is made."""
        rule = self.identify_threshold(gallery, threshold, given_source)
        timings = {} if timings is None else timings
        clock = StageClock(timings)
        found = gallery.identify(np.stack([f.embedding for f in faces]), rule.value, top_k) if faces else []
        clock.lap("search")
        identified = [IdentifiedFace(tuple(int(v) for v in f.box), tuple(r.matches), r.identity)
                      for f, r in zip(faces, found)]
        return PhotoIdentification(identified, rule.value, rule.source, timings)


class FaceAnalyzer(FaceApi):
    """detect -> landmarks -> align -> embed, in this process; the embed step is pluggable."""

    def __init__(self, detector: FaceDetector, landmarks: ShapePredictor, embedder: EmbedStep, upsample: int = 0):
        self.detector, self.landmarks, self.embedder = detector, landmarks, embedder
        self.upsample = upsample

    @classmethod
    def from_engines(
        cls, engines_dir: str | Path | None = None, precision: str = "fp32", upsample: int = 0, threshold: float | None = None,
        backend: str | None = None, embedder_engines: str | Path | None = None, detector_precision: str = "fp32",
    ) -> FaceAnalyzer:
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

    def with_embedder(self, embedder: EmbedStep) -> FaceAnalyzer:
        """This analyzer's detector and landmarks with another embed step (e.g. a batcher in front of this one's)."""
        return FaceAnalyzer(self.detector, self.landmarks, embedder, self.upsample)

    def close(self) -> None:
        """Release the detector's and the embedder's backends (the landmarks hold none). Idempotent."""
        self.detector.close()
        self.embedder.close()

    @staticmethod
    def _pixels(image) -> np.ndarray:
        return image if isinstance(image, np.ndarray) else load_image(image)

    def chips(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(landmarks (N, 5, 2), chips (N, 150, 150, 3)) for the given boxes."""
        return self._landmarks_and_chips(image, boxes, StageClock())

    def _landmarks_and_chips(self, image: np.ndarray, boxes: np.ndarray, clock: StageClock):
        h, w = self.embedder.input_size
        if len(boxes) == 0:
            clock.skip("landmarks", "align")
            return np.zeros((0, 5, 2), np.int64), np.zeros((0, h, w, 3), np.uint8)
        points = self.landmarks.predict(image, boxes)
        clock.lap("landmarks")
        chips = extract_face_chips(image, points, size=w)
        clock.lap("align")
        return points, chips

    def align(self, image, upsample: int | None = None, clock: StageClock | None = None) -> Aligned:
        """One image (a path, bytes or pixels) decoded, its faces detected, their landmarks found and chips cut."""
        clock = clock or StageClock()
        pixels = self._pixels(image)
        clock.lap("decode")
        detections = self.detector.detect(pixels, upsample=self.upsample if upsample is None else upsample)
        clock.lap("detect")
        points, chips = self._landmarks_and_chips(pixels, detections.boxes, clock)
        return Aligned(detections.boxes, detections.scores, points, chips)

    def embed_aligned(self, aligned: list[Aligned], clock: StageClock | None = None) -> list[list[Face]]:
        """The faces of each aligned image; all their chips embedded in one call of the embed step."""
        clock = clock or StageClock()
        if not any(len(a) for a in aligned):
            clock.skip("embed")
            return [[] for _ in aligned]
        embeddings = self.embedder.embed(np.concatenate([a.chips for a in aligned]))
        clock.lap("embed")
        out, start = [], 0
        for a in aligned:
            out.append([Face(a.boxes[i], float(a.scores[i]), a.landmarks[i], embeddings[start + i], a.chips[i])
                        for i in range(len(a))])
            start += len(a)
        return out

    def faces_batch(self, images, upsample: int | None = None, timings: dict | None = None) -> list[list[Face]]:
        """Every face of every image; the chips of all images are embedded in one batched call.
        ``timings``: a dict to which each stage's milliseconds are added (decode, detect, landmarks, align, embed)."""
        clock = StageClock(timings)
        return self.embed_aligned([self.align(image, upsample, clock) for image in images], clock)
