"""Photos in, people out: enrolment, identification (with per-stage timings) and re-embedding."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .api import Gallery

STAGES = ("decode", "detect", "landmarks", "align", "embed", "search")


@dataclass(frozen=True)
class EnrolOutcome:
    file: str
    status: str  # "enrolled", "duplicate", "no face", "several faces"
    faces: int


def enroll_photos(gallery: Gallery, analyzer, name: str, files: list[str | Path]) -> list[EnrolOutcome]:
    """Enrol ``name`` from photos that each show exactly one face; other photos are reported, not guessed."""
    from ...images import load_image

    outcomes = []
    for file in files:
        data = Path(file).read_bytes() if Path(file).is_file() else None
        image = load_image(data if data is not None else file)  # raises BadImageError naming the file
        faces = analyzer.faces(image)
        if len(faces) != 1:
            outcomes.append(EnrolOutcome(str(file), "no face" if not faces else "several faces", len(faces)))
            continue
        added = gallery.add(name, faces[0].embedding, hashlib.sha256(data).hexdigest(), str(file),
                            [int(v) for v in faces[0].box])
        outcomes.append(EnrolOutcome(str(file), "enrolled" if added else "duplicate", 1))
    return outcomes


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


def reembed(location: str | Path, analyzer) -> tuple[int, list[str]]:
    """Rebuild a gallery with ``analyzer``'s model from the source photos it recorded.

    Every photo is embedded first; then all embeddings and the model identity are swapped in one
    transaction. A SQLite gallery is first copied to ``<name>.bak``. Returns (embeddings re-made,
    problems with photos that are gone, changed, or without exactly one face now).
    """
    import json

    from ...images import load_image

    old = Gallery.open(location, Gallery.stored_identity(location), create=False)
    rows, problems, seen = [], [], set()
    try:
        for record in old.records():
            source, name = record["source_file"], record["name"]
            try:
                data = Path(source).read_bytes()
            except (OSError, TypeError):
                problems.append(f"{name}: source photo {source} is gone")
                continue
            sha = hashlib.sha256(data).hexdigest()
            if sha != record["source_sha256"]:
                problems.append(f"{name}: source photo {source} changed since enrolment")
                continue
            faces = analyzer.faces(load_image(data))
            if len(faces) != 1:
                problems.append(f"{name}: {source}: {'no face' if not faces else 'several faces'} with the new model")
                continue
            if (name, sha) not in seen:
                seen.add((name, sha))
                rows.append((name, np.asarray(faces[0].embedding, np.float32).tobytes(), sha, str(source),
                             json.dumps([int(v) for v in faces[0].box]), time.time()))
        old.store.backup()
        old.store.replace_model(analyzer.embedder.identity, rows)
    finally:
        old.close()
    faiss = old.store.faiss_path
    if faiss is not None:
        Path(faiss).unlink(missing_ok=True)  # stale anyway; not worth keeping its disk space
    return len(rows), problems
