"""Photos in, people out: identification with per-stage timings (enrolment is in :mod:`.enrol`)."""

from __future__ import annotations

import time

import numpy as np

from .api import Gallery

STAGES = ("decode", "detect", "landmarks", "align", "embed", "search")


class PhotoIdentification(list):
    """The faces of one photo (a list of dicts, as before) and ``timings``: ms per stage."""

    timings: dict[str, float]


def _faces_timed(analyzer, image, timings: dict[str, float]):
    """``analyzer.faces(image)`` stage by stage, each stage's wall time added to ``timings`` (ms)."""
    from ...images import load_image
    from ..align import extract_face_chips
    from ..analyzer import Face

    def lap(stage, start):
        now = time.perf_counter()
        timings[stage] = round(timings.get(stage, 0.0) + (now - start) * 1000, 3)
        return now

    start = time.perf_counter()
    pixels = image if isinstance(image, np.ndarray) else load_image(image)
    start = lap("decode", start)
    detections = analyzer.detector.detect(pixels, upsample=analyzer.upsample)
    start = lap("detect", start)
    if len(detections.boxes) == 0:
        for stage in ("landmarks", "align", "embed"):
            timings[stage] = 0.0
        return []
    points = analyzer.landmarks.predict(pixels, detections.boxes)
    start = lap("landmarks", start)
    chips = extract_face_chips(pixels, points, size=analyzer.embedder.input_size[1])
    start = lap("align", start)
    embeddings = analyzer.embedder.embed(chips)
    lap("embed", start)
    return [Face(detections.boxes[i], float(detections.scores[i]), points[i], embeddings[i]) for i in range(len(chips))]


def identify_photo(gallery: Gallery, analyzer, image, threshold: float | None = None, top_k: int = 3) -> PhotoIdentification:
    """Every face of a photo with its nearest enrolled people and its identity (or "unknown").

    The result is a list (one dict per face: ``box``, ``matches``, ``identity``) whose ``timings``
    attribute gives the milliseconds spent decoding, detecting, finding landmarks, aligning,
    embedding and searching.
    """
    timings: dict[str, float] = {}
    faces = _faces_timed(analyzer, image, timings)
    out = PhotoIdentification()
    start = time.perf_counter()
    if faces:
        t = analyzer.threshold if threshold is None else float(threshold)
        results = gallery.identify(np.stack([f.embedding for f in faces]), t, top_k)
        out.extend(
            {"box": [int(v) for v in f.box],
             "matches": [{"name": m.name, "distance": round(m.distance, 6)} for m in r.matches],
             "identity": r.identity}
            for f, r in zip(faces, results))
    timings["search"] = round((time.perf_counter() - start) * 1000, 3)
    out.timings = {stage: timings[stage] for stage in STAGES}
    return out
