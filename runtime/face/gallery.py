"""A persistent gallery of enrolled people: one SQLite file, for one-shot enrolment and 1:N identification.

One photo is enough to know a person later: its embedding is stored, and a query face is the enrolled
person at the smallest distance, or "unknown" when even that distance exceeds the threshold. A person
with several photos is as close as their closest photo (minimum distance).

The file records the model (id, precision, sha256) that produced its embeddings; opening it with
another model raises instead of mixing embeddings of different models. Writes are transactions
(WAL journal), so concurrent enrolments lose nothing and a killed process leaves it consistent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError, FacestyleError

SCHEMA_VERSION = 1
UNKNOWN = "unknown"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    source_sha256 TEXT NOT NULL,
    source_file TEXT,
    box TEXT,
    created REAL NOT NULL,
    UNIQUE (person_id, source_sha256));
"""


class GalleryError(FacestyleError):
    """A gallery file that is corrupted, of another schema, or not a gallery."""


class GalleryModelMismatchError(GalleryError):
    """A gallery whose embeddings come from another model or precision than the one in use."""


@dataclass(frozen=True)
class ModelIdentity:
    model: str
    precision: str
    sha256: str
    dim: int = 128

    def describe(self) -> str:
        return f"{self.model} {self.precision} (sha256 {self.sha256[:12]})"


@dataclass(frozen=True)
class Match:
    name: str
    distance: float


@dataclass(frozen=True)
class Identification:
    matches: list[Match]  # nearest people first, at most top_k
    identity: str  # the nearest person's name, or "unknown" beyond the threshold


class Gallery:
    """Open with :meth:`open`. Safe to share between threads (one SQLite connection per thread)."""

    def __init__(self, path: Path, identity: ModelIdentity, search: str = "exact"):
        if search not in ("exact", "faiss"):
            raise BadInputError(f"search {search!r}: expected 'exact' or 'faiss'")
        self.path, self.identity, self.search = path, identity, search
        self._faiss_index = None  # (generation, index) when search == "faiss"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: tuple[int, list[str], np.ndarray, np.ndarray] | None = None  # generation, names, owner, vectors

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, identity: ModelIdentity, create: bool = True, search: str = "exact") -> "Gallery":
        """``search="faiss"`` (extra ``faiss``) uses a faiss flat index, rebuilt when the gallery changes."""
        path = Path(path)
        if not path.exists() and not create:
            raise GalleryError(f"{path}: no such gallery; enrol someone to create it")
        gallery = cls(path, identity, search)
        gallery._initialise()
        return gallery

    @staticmethod
    def stored_identity(path: str | Path) -> ModelIdentity:
        """The model a gallery file's embeddings come from, read without opening it for use."""
        try:
            with closing(sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)) as db:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            return ModelIdentity(meta["model"], meta["precision"], meta["model_sha256"], int(meta["dim"]))
        except (sqlite3.DatabaseError, KeyError) as exc:
            raise GalleryError(f"{path}: not a facestyle gallery, or corrupted ({exc})") from None

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                db.execute("PRAGMA foreign_keys = ON")
                db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.DatabaseError as exc:
                raise GalleryError(f"{self.path}: not a facestyle gallery, or corrupted ({exc})") from None
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self):
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now: concurrent writers wait, none is lost
            yield db
            db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _initialise(self) -> None:
        try:
            db = self._connect()
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise GalleryError(f"{self.path}: integrity check failed ({check})")
            with self._transaction() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if not meta:
                    self._write_meta(db)
                    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path}: not a facestyle gallery, or corrupted ({exc})") from None
        self._check_meta(meta)

    def _write_meta(self, db: sqlite3.Connection) -> None:
        values = {
            "schema_version": str(SCHEMA_VERSION),
            "model": self.identity.model,
            "precision": self.identity.precision,
            "model_sha256": self.identity.sha256,
            "dim": str(self.identity.dim),
            "generation": "0",
            "created": str(time.time()),
        }
        db.executemany("INSERT INTO meta VALUES (?, ?)", values.items())

    def _check_meta(self, meta: dict) -> None:
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise GalleryError(f"{self.path}: gallery schema {meta.get('schema_version')}, this facestyle reads {SCHEMA_VERSION}")
        stored = ModelIdentity(meta["model"], meta["precision"], meta["model_sha256"], int(meta["dim"]))
        if stored != self.identity:
            raise GalleryModelMismatchError(
                f"{self.path}: its embeddings come from {stored.describe()}, not {self.identity.describe()}; "
                f"embeddings of different models are never mixed. Re-embed its people from their stored source "
                f"photos with `facestyle gallery reembed --gallery {self.path}`, or open it with the model that made it"
            )

    # -- writing --------------------------------------------------------------------------------
    def add(self, name: str, vector: np.ndarray, source_sha256: str, source_file: str | None = None, box=None) -> bool:
        """Store one embedding of ``name``; False if this photo was already enrolled for them."""
        name = name.strip()
        if not name or name == UNKNOWN:
            raise BadInputError(f"person name {name!r}: expected a non-empty name other than {UNKNOWN!r}")
        vector = np.asarray(vector, np.float32).reshape(-1)
        if vector.shape != (self.identity.dim,) or not np.all(np.isfinite(vector)):
            raise BadInputError(f"embedding for {name!r}: expected {self.identity.dim} finite floats, got shape {vector.shape}")
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO people (name, created) VALUES (?, ?)", (name, time.time()))
            person = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
            cursor = db.execute(
                "INSERT OR IGNORE INTO embeddings (person_id, vector, source_sha256, source_file, box, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (person, vector.tobytes(), source_sha256, source_file, json.dumps(box), time.time()),
            )
            return cursor.rowcount == 1

    def remove(self, name: str) -> int:
        """Forget a person; returns how many embeddings went with them."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise BadInputError(f"{self.path}: nobody called {name!r} is enrolled")
            count = db.execute("SELECT COUNT(*) FROM embeddings WHERE person_id = ?", row).fetchone()[0]
            db.execute("DELETE FROM people WHERE id = ?", row)
            return count

    # -- reading --------------------------------------------------------------------------------
    def people(self) -> list[tuple[str, int]]:
        rows = self._connect().execute(
            "SELECT p.name, COUNT(e.id) FROM people p LEFT JOIN embeddings e ON e.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name"
        ).fetchall()
        return [(name, count) for name, count in rows]

    def records(self) -> list[dict]:
        rows = self._connect().execute(
            "SELECT p.name, e.source_sha256, e.source_file, e.box, e.created, e.vector FROM embeddings e "
            "JOIN people p ON p.id = e.person_id ORDER BY p.name, e.id"
        ).fetchall()
        return [
            {"name": n, "source_sha256": s, "source_file": f, "box": json.loads(b), "created": c,
             "embedding": np.frombuffer(v, np.float32).tolist()}
            for n, s, f, b, c, v in rows
        ]

    def _vectors(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(names, owner index per vector, vectors), reloaded only when the gallery changed."""
        db = self._connect()
        generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        return self._load(db, generation)

    def _load(self, db, generation: int):
        with self._lock:
            if self._cache is None or self._cache[0] != generation:
                rows = db.execute(
                    "SELECT p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id ORDER BY p.name, e.id"
                ).fetchall()
                names = sorted({name for name, _ in rows})
                index = {name: i for i, name in enumerate(names)}
                owner = np.array([index[name] for name, _ in rows], np.int64)
                vectors = (np.stack([np.frombuffer(v, np.float32) for _, v in rows]).astype(np.float64) if rows
                           else np.zeros((0, self.identity.dim)))
                self._cache = (generation, names, owner, vectors)
            return self._cache[1], self._cache[2], self._cache[3]

    def _faiss_distances(self, queries: np.ndarray, names, owner, vectors, top_k: int) -> np.ndarray:
        """Per-person minimum distances for the nearest people only (inf elsewhere), via faiss."""
        try:
            import faiss
        except ImportError:
            from ..errors import MissingDependencyError

            raise MissingDependencyError("search='faiss' needs faiss: pip install 'facestyle[faiss]'") from None
        generation = self._cache[0]
        with self._lock:
            if self._faiss_index is None or self._faiss_index[0] != generation:
                index = faiss.IndexFlatL2(vectors.shape[1])
                index.add(np.ascontiguousarray(vectors, np.float32))
                self._faiss_index = (generation, index)
            index = self._faiss_index[1]
        # Vectors nearer than the k-th nearest person's closest photo belong to the k-1 people before it,
        # so top_k * (most photos of anyone) neighbours hold the exact top_k people and their minima.
        neighbours = int(min(len(vectors), top_k * np.bincount(owner).max()))
        squared, ids = index.search(np.ascontiguousarray(queries, np.float32), neighbours)
        out = np.full((len(queries), len(names)), np.inf)
        for q in range(len(queries)):
            valid = ids[q] >= 0
            np.minimum.at(out[q], owner[ids[q][valid]], np.sqrt(np.maximum(squared[q][valid], 0)))
        return out

    def identify(self, queries: np.ndarray, threshold: float, top_k: int = 3) -> list[Identification]:
        """For each query embedding, the ``top_k`` nearest people (minimum distance over their photos)."""
        # float64: with |q|^2 - 2 q.v + |v|^2 in float32 a photo's distance to itself comes out ~5e-4
        queries = np.atleast_2d(np.asarray(queries, np.float64))
        if top_k < 1:
            raise BadInputError(f"top_k {top_k}: expected at least 1")
        names, owner, vectors = self._vectors()
        if not names:
            return [Identification([], UNKNOWN) for _ in queries]
        if self.search == "faiss":
            per_person = self._faiss_distances(queries, names, owner, vectors, top_k)
        else:
            distances = np.sqrt(np.maximum(
                (queries**2).sum(1)[:, None] - 2 * queries @ vectors.T + (vectors**2).sum(1)[None], 0))
            # Vectors are ordered by person, so each person's photos form one run: reduce each to its minimum.
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            per_person = np.minimum.reduceat(distances, starts, axis=1)
        k = min(top_k, len(names))
        results = []
        for row in per_person:
            nearest = np.argpartition(row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            best = nearest[np.lexsort((nearest, row[nearest]))]  # by distance, then by name
            matches = [Match(names[i], float(row[i])) for i in best if np.isfinite(row[i])]
            results.append(Identification(matches, matches[0].name if matches[0].distance <= threshold else UNKNOWN))
        return results

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


# -- photos in, people out ----------------------------------------------------------------------
@dataclass(frozen=True)
class EnrolOutcome:
    file: str
    status: str  # "enrolled", "duplicate", "no face", "several faces"
    faces: int


def enroll_photos(gallery: Gallery, analyzer, name: str, files: list[str | Path]) -> list[EnrolOutcome]:
    """Enrol ``name`` from photos that each show exactly one face; other photos are reported, not guessed."""
    import hashlib

    from ..images import load_image

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


def reembed(path: str | Path, analyzer) -> tuple[int, list[str]]:
    """Rebuild a gallery with ``analyzer``'s model from the source photos it recorded.

    The new gallery is written beside the old one and renamed over it; the old file is kept as
    ``<name>.bak``. Returns (embeddings re-made, problems with photos that are gone or changed).
    """
    import hashlib
    import os

    path = Path(path)
    old = Gallery.open(path, Gallery.stored_identity(path), create=False)
    tmp = path.with_name(path.name + ".reembed.tmp")
    tmp.unlink(missing_ok=True)
    new = Gallery.open(tmp, analyzer.embedder.identity)
    made, problems = 0, []
    for record in old.records():
        source = record["source_file"]
        try:
            data = Path(source).read_bytes()
        except (OSError, TypeError):
            problems.append(f"{record['name']}: source photo {source} is gone")
            continue
        if hashlib.sha256(data).hexdigest() != record["source_sha256"]:
            problems.append(f"{record['name']}: source photo {source} changed since enrolment")
            continue
        outcome = enroll_photos(new, analyzer, record["name"], [source])[0]
        made += outcome.status == "enrolled"
        if outcome.status not in ("enrolled", "duplicate"):
            problems.append(f"{record['name']}: {source}: {outcome.status} with the new model")
    old.close()
    new.close()
    for done in (path, tmp):  # fold each WAL into its file, so renaming moves all of the data
        with closing(sqlite3.connect(done)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("PRAGMA journal_mode = DELETE")
    os.replace(path, path.with_name(path.name + ".bak"))
    os.replace(tmp, path)
    return made, problems


def identify_photo(gallery: Gallery, analyzer, image, threshold: float | None = None, top_k: int = 3) -> list[dict]:
    """Every face of a photo with its nearest enrolled people and its identity (or "unknown")."""
    faces = analyzer.faces(image)
    if not faces:
        return []
    t = analyzer.threshold if threshold is None else float(threshold)
    results = gallery.identify(np.stack([f.embedding for f in faces]), t, top_k)
    return [
        {"box": [int(v) for v in f.box], "matches": [{"name": m.name, "distance": round(m.distance, 6)} for m in r.matches],
         "identity": r.identity}
        for f, r in zip(faces, results)
    ]
