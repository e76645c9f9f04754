"""Enrolment from photos and re-embedding from the stored face chips.

Enrolment is all or nothing: every photo is analysed first, and only when each shows exactly one face,
readable, of good enough quality (:data:`~facestyle.face.quality.POOR_ENROLMENT`, unless ``allow_poor``) and not
already enrolled under another name, are they all written, in one transaction
(``skip_bad`` writes the good ones and reports the rest). The aligned chip of every enrolled face is
stored (PNG, lossless), so a gallery can be re-embedded with another model without the photos.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ...errors import FacestyleError, GalleryError
from ...progress import Progress
from ..quality import POOR_ENROLMENT, QualityParts, face_quality
from .api import Gallery
from .names import check_name

ACCEPTED = ("enrolled", "duplicate")  # "duplicate": already enrolled for this person; nothing to write
REFUSED = ("unreadable", "no face", "several faces", "poor quality", "another person")


@dataclass(frozen=True)
class EnrolOutcome:
    file: str
    person: str
    status: str  # one of ACCEPTED or REFUSED
    faces: int = 0
    detail: str = ""  # for a refusal: one line saying why
    box: tuple[int, int, int, int] | None = None
    quality: QualityParts | None = None  # of the one face found

    @property
    def refused(self) -> bool:
        return self.status in REFUSED


class Enrolment(list):
    """The outcome of every photo, in input order; ``committed``: whether anything was written."""

    committed: bool = False

    @property
    def refused(self) -> list[EnrolOutcome]:
        return [o for o in self if o.refused]


@dataclass
class _Planned:
    outcome: EnrolOutcome
    sha256: str = ""
    embedding: np.ndarray | None = None
    chip: bytes | None = None


def _read(analyzer, label: str, data: bytes | None) -> tuple[bytes | None, list, str]:
    """(photo bytes, faces, "") or (None, [], why it could not be read)."""
    from ...images import load_image

    try:
        data = Path(label).read_bytes() if data is None else data
        return data, analyzer.faces(load_image(data, name=label)), ""
    except (FacestyleError, OSError) as exc:
        return None, [], " ".join(str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc).split())


def _poor(quality: QualityParts | None, allow_poor: bool) -> str:
    """Why a face is too poor to enrol from ("" when it is not, or when that is allowed)."""
    if allow_poor or quality is None or quality.score >= POOR_ENROLMENT:
        return ""
    return f"quality {quality.score:.2f}, under {POOR_ENROLMENT:.2f}: {', '.join(quality.reasons())}"


def _plan(person: str, label: str, data: bytes | None, faces: list, unreadable: str = "",
          allow_poor: bool = False) -> _Planned:
    from ...images import encode_image

    if unreadable:
        return _Planned(EnrolOutcome(label, person, "unreadable", detail=unreadable))
    if len(faces) != 1:
        status = "no face" if not faces else "several faces"
        detail = ("faces under ~80 px need upsampling (--upsample 1)" if not faces
                  else f"{len(faces)} found; enrol from a photo of {person} alone")
        return _Planned(EnrolOutcome(label, person, status, len(faces), detail))
    face = faces[0]
    box, quality = tuple(int(v) for v in face.box), face_quality(face)
    poor = _poor(quality, allow_poor)
    if poor:
        return _Planned(EnrolOutcome(label, person, "poor quality", 1, poor, box, quality))
    return _Planned(EnrolOutcome(label, person, "enrolled", 1, box=box, quality=quality), hashlib.sha256(data).hexdigest(),
                    np.asarray(face.embedding, np.float32), encode_image(face.chip))


def _mark_other_people(owners: dict[str, list[str]], planned: list[_Planned], allow_duplicate: bool) -> None:
    """A photo enrolled (or about to be) under another name is refused, or with ``allow_duplicate`` let through;
    one already enrolled (or earlier in this batch) under the same name is a duplicate. ``owners``: the people
    each photo hash is enrolled under (:meth:`Store.owners`)."""
    owners = {sha: list(names) for sha, names in owners.items()}
    for p in planned:
        o = p.outcome
        if o.refused:
            continue
        names = owners.setdefault(p.sha256, [])
        if o.person in names:
            p.outcome = replace(o, status="duplicate")
        elif names and not allow_duplicate:
            p.outcome = replace(o, status="another person", detail=f"this photo is already enrolled as {names[0]}")
        else:
            names.append(o.person)


def _check_names(names) -> None:
    """Every person's name is valid, before any photo is analysed."""
    for name in dict.fromkeys(names):
        check_name(name)


def enroll_faces(gallery: Gallery, items, skip_bad: bool = False, allow_duplicate: bool = False,
                 allow_poor: bool = False) -> Enrolment:
    """Enrol already analysed photos: ``items`` of (person, label, photo bytes, faces found in it). Nothing is
    written if any photo is refused, unless ``skip_bad``; then the good ones are, in one transaction.
    ``allow_poor``: enrol a face whose quality is under ``POOR_ENROLMENT`` too."""
    items = list(items)
    _check_names(item[0] for item in items)
    return _commit(gallery, [_plan(check_name(person), label, data, faces, allow_poor=allow_poor)
                             for person, label, data, faces in items], skip_bad, allow_duplicate)


def enroll_people(gallery: Gallery, analyzer, items, skip_bad: bool = False, allow_duplicate: bool = False,
                  progress: bool = False, allow_poor: bool = False) -> Enrolment:
    """Enrol (person, photo file) pairs, every photo analysed first; all or nothing as in :func:`enroll_faces`.
    An unreadable photo is a refusal like one without a face."""
    items = [(person, str(file)) for person, file in items]
    _check_names(person for person, _ in items)
    planned = []
    with Progress(len(items), "enrolling", enabled=progress) as bar:
        for person, label in items:
            data, faces, unreadable = _read(analyzer, label, None)
            planned.append(_plan(check_name(person), label, data, faces, unreadable, allow_poor))
            bar.update()
    return _commit(gallery, planned, skip_bad, allow_duplicate)


def _commit(gallery: Gallery, planned: list[_Planned], skip_bad: bool, allow_duplicate: bool) -> Enrolment:
    """Write the photos that may be, deciding which under the store's write lock: the check for a photo already
    enrolled (under this name or another) and the insert are one transaction, so concurrent enrolments of one
    photo under two names cannot both pass it."""
    analysed = [p for p in planned if not p.outcome.refused]
    if not analysed or (len(analysed) < len(planned) and not skip_bad):  # nothing will be written: report only
        _mark_other_people(gallery.store.owners([p.sha256 for p in analysed]) if analysed else {}, planned,
                           allow_duplicate)
        return Enrolment(p.outcome for p in planned)
    written: list[_Planned] = []

    def choose(owners: dict[str, list[str]]) -> list[tuple]:
        _mark_other_people(owners, planned, allow_duplicate)
        new = [p for p in analysed if p.outcome.status == "enrolled"]
        written[:] = new if (skip_bad or not any(p.outcome.refused for p in planned)) else []
        if not written:
            return []
        return gallery.rows([p.outcome.person for p in written], np.stack([p.embedding for p in written]),
                            [p.sha256 for p in written], files=[p.outcome.file for p in written],
                            boxes=[list(p.outcome.box) for p in written], chips=[p.chip for p in written])

    gallery.store.add_rows_checked([p.sha256 for p in analysed], choose)
    result = Enrolment(p.outcome for p in planned)
    result.committed = bool(written)
    return result


def enroll_photos(gallery: Gallery, analyzer, name: str, files, skip_bad: bool = False,
                  allow_duplicate: bool = False, progress: bool = False, allow_poor: bool = False) -> Enrolment:
    """Enrol ``name`` from photos that each show exactly one face (see :func:`enroll_people`)."""
    return enroll_people(gallery, analyzer, [(name, f) for f in files], skip_bad, allow_duplicate, progress, allow_poor)


# -- re-embedding ---------------------------------------------------------------------------------
class ReembedError(GalleryError):
    """Some embeddings could not be re-made; the gallery was left as it was. ``problems``: one line each."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


def _chip_from_source(record: dict, analyzer) -> np.ndarray:
    """The aligned chip of a record stored without one (schema 1), made again from its source photo."""
    from ...images import load_image

    source, name = record["source_file"], record["name"]
    if not source:
        raise GalleryError(f"{name}: stored without a face chip or a source photo (imported); remove or re-enrol them")
    try:
        data = Path(source).read_bytes()
    except OSError:
        raise GalleryError(f"{name}: source photo {source} is gone and no face chip is stored") from None
    if hashlib.sha256(data).hexdigest() != record["source_sha256"]:
        raise GalleryError(f"{name}: source photo {source} changed since enrolment and no face chip is stored")
    faces = analyzer.faces(load_image(data))
    if len(faces) != 1:
        raise GalleryError(f"{name}: {source}: {'no face' if not faces else 'several faces'} with the new model")
    return faces[0].chip


def _chip_of(record: dict, analyzer) -> np.ndarray:
    from PIL import Image

    from ...images import load_image

    if record["chip"] is None:
        return _chip_from_source(record, analyzer)
    chip = load_image(record["chip"])
    h, w = analyzer.embedder.input_size
    if chip.shape[:2] != (h, w):  # another model's input size: the same alignment, resampled
        chip = np.asarray(Image.fromarray(chip).resize((w, h), Image.BICUBIC))
    return chip


def reembed(location: str | Path, analyzer, progress: bool = False) -> int:
    """Re-make every embedding of a gallery with ``analyzer``'s model, from the stored face chips (or, for
    galleries enrolled before chips were stored, from the source photos).

    All or nothing: if any embedding cannot be re-made, :class:`ReembedError` lists why and the gallery
    is unchanged; else all embeddings and the model identity are swapped in one transaction (a SQLite
    gallery is first copied to ``<name>.bak``). Returns how many embeddings were re-made.
    """
    from ...images import encode_image

    stored = Gallery.stored_identity(location)
    old = Gallery.open(location, stored, create=False, write=False)
    try:
        records, chips, problems = old.records(), [], []
        with Progress(len(records), "re-embedding", enabled=progress) as bar:
            for record in records:
                try:
                    chips.append(_chip_of(record, analyzer))
                except FacestyleError as exc:
                    problems.append(str(exc))
                bar.update()
        if problems:
            raise ReembedError(f"{old.store.location}: nothing changed; {len(problems)} of {len(records)} "
                               f"embedding(s) cannot be re-made ({problems[0]})", problems)
        vectors = np.concatenate([analyzer.embedder.embed(np.stack(chips[i:i + 64])) for i in range(0, len(chips), 64)]) \
            if chips else np.zeros((0, analyzer.embedder.identity.dim), np.float32)
        fresh = Gallery(old.store, analyzer.embedder.identity)
        rows = fresh.rows([r["name"] for r in records], vectors, [r["source_sha256"] for r in records],
                          files=[r["source_file"] for r in records], boxes=[r["box"] for r in records],
                          created=[r["created"] for r in records],
                          chips=[r["chip"] or encode_image(c) for r, c in zip(records, chips)], stored_names=True)
        old.store.initialise(stored, write=True)  # upgrades a schema-1 gallery, now that nothing can fail
        old.store.backup()
        old.store.replace_model(analyzer.embedder.identity, rows)
    finally:
        old.close()
    faiss = old.store.faiss_path
    if faiss is not None:
        Path(faiss).unlink(missing_ok=True)  # stale anyway; not worth keeping its disk space
    return len(rows)
