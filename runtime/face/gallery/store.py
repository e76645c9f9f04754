"""What both gallery stores (SQLite, PostgreSQL) share: the tables, the SQL, the transactions.

Every write is one transaction that first bumps the ``generation`` counter in ``meta`` (so writers
take the same row lock before anything else and ids grow in commit order); removals and re-embedding
also bump ``removed``, which tells readers an in-memory matrix can no longer just be extended.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager

import numpy as np

from ...errors import BadInputError, GalleryError, GalleryModelMismatchError
from ...manifest import ModelIdentity
from .names import UNKNOWN  # noqa: F401  (re-exported: what identification calls a face nobody matches)

BULK_ROWS = 10_000  # an import this large refreshes the planner's statistics (PostgreSQL)
_NAMES_PER_QUERY = 500  # under SQLite's old limit of 999 parameters
SCHEMA_VERSION = 2  # 2: the aligned face chip of every enrolled face is stored (so re-embedding needs no photos)
READABLE_SCHEMAS = ("1", "2")  # a schema-1 gallery is read as it is and upgraded by the first write
ROW_FIELDS = ("name", "vector", "source_sha256", "source_file", "box", "created", "chip")  # a store row, in order


class Store:
    """One gallery's tables. Subclasses: :class:`SqliteStore`, :class:`PostgresStore`."""

    schema: str = ""  # CREATE TABLE statements, ';'-separated
    begin = "BEGIN"
    errors: tuple[type[BaseException], ...] = ()  # the driver's errors, reported as GalleryError
    faiss_path = None  # where a faiss index may be persisted (None: in memory only)

    def __init__(self, location: str):
        self.location = location
        self._local = threading.local()
        self.chip_column = True  # set by initialise: False for a schema-1 gallery opened read-only

    # -- dialect hooks ----------------------------------------------------------------------------
    def _new_connection(self):
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text

    def exists(self) -> bool:
        raise NotImplementedError

    def _integrity_check(self, db) -> None:
        pass

    def _init_lock(self, db) -> None:
        pass

    def backup(self) -> str | None:
        return None

    def refuse_foreign(self) -> None:
        """Raise GalleryError, touching nothing, when the location holds something that is not a facestyle gallery."""

    def _prepare_for_writing(self, db) -> None:
        pass

    def _has_chip_column(self, db) -> bool:
        raise NotImplementedError

    def _add_chip_column(self, db) -> None:
        self.execute(db, "ALTER TABLE embeddings ADD COLUMN chip BLOB")

    def _has_table(self, db, table: str) -> bool:
        raise NotImplementedError

    def has_table(self, table: str) -> bool:
        """Whether ``table`` exists (a gallery made before it had it gets it on its first write)."""
        try:
            return self._has_table(self.connect(), table)
        except self.errors as exc:
            raise self.broken(exc) from None

    # -- plumbing ---------------------------------------------------------------------------------
    def broken(self, exc: BaseException) -> GalleryError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return GalleryError(f"{self.location}: not a facestyle gallery, or corrupted ({detail})")

    def connect(self):
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = self._new_connection()
            except self.errors as exc:
                raise self.broken(exc) from None
            self._local.db = db
        return db

    def execute(self, db, sql: str, params=()):
        return db.execute(self._sql(sql), params)

    def executemany(self, db, sql: str, rows):
        """The cursor, whose ``rowcount`` is the rows changed by all of ``rows`` (sqlite3 and psycopg 3)."""
        cursor = db.cursor()
        cursor.executemany(self._sql(sql), rows)
        return cursor

    def _bump(self, db, key: str) -> None:
        self.execute(db, "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = ?", (key,))

    @contextmanager
    def transaction(self, removal: bool = False):
        db = self.connect()
        db.execute(self.begin)
        try:
            self._bump(db, "generation")  # the write lock first: concurrent writers queue here
            if removal:
                self._bump(db, "removed")
            yield db
            db.execute("COMMIT")
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except self.errors:
                pass
            raise

    def meta(self, db=None) -> dict:
        return dict(self.execute(db or self.connect(), "SELECT key, value FROM meta").fetchall())

    @staticmethod
    def identity_of(meta: dict, location: str = "gallery") -> ModelIdentity:
        """The model identity a gallery's meta records, or GalleryError naming what is missing or malformed."""
        missing = [key for key in ("model", "precision", "model_sha256", "dim") if key not in meta]
        if missing:
            raise GalleryError(f"{location}: not a facestyle gallery, or corrupted (no {', '.join(missing)} in its meta)")
        dim = str(meta["dim"])
        if not dim.isdecimal() or int(dim) < 1:
            raise GalleryError(f"{location}: corrupted gallery (its meta dim {meta['dim']!r} is not a positive integer)")
        return ModelIdentity(str(meta["model"]), str(meta["precision"]), str(meta["model_sha256"]), int(dim))

    def initialise(self, identity: ModelIdentity, write: bool = True) -> None:
        """Check the schema and that ``identity`` made the embeddings; with ``write``, create the tables if new
        and upgrade an older schema (only after the checks passed, so a refused open changes nothing)."""
        try:
            db = self.connect()
            self._integrity_check(db)
            if write:
                self._prepare_for_writing(db)
                self._initialise_for_writing(db, identity)
            else:
                self.check(self.meta(db), identity)
            self.chip_column = self._has_chip_column(db)
        except self.errors as exc:
            raise self.broken(exc) from None

    def _initialise_for_writing(self, db, identity: ModelIdentity) -> None:
        db.execute(self.begin)
        try:
            self._init_lock(db)
            for statement in self.schema.split(";"):
                if statement.strip():
                    db.execute(statement)
            meta = self.meta(db)
            if not meta:
                meta = {"schema_version": str(SCHEMA_VERSION), "model": identity.model,
                        "precision": identity.precision, "model_sha256": identity.sha256,
                        "dim": str(identity.dim), "generation": "0", "created": str(time.time())}
                self.executemany(db, "INSERT INTO meta VALUES (?, ?)", list(meta.items()))
            self.check(meta, identity)
            for key, value in (("uid", uuid.uuid4().hex), ("removed", "0")):  # galleries made before these
                if key not in meta:
                    self.execute(db, "INSERT INTO meta VALUES (?, ?)", (key, value))
            if not self._has_chip_column(db):
                self._add_chip_column(db)
            if meta["schema_version"] != str(SCHEMA_VERSION):
                self.execute(db, "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def check(self, meta: dict, identity: ModelIdentity) -> None:
        if meta.get("schema_version") not in READABLE_SCHEMAS:
            raise GalleryError(f"{self.location}: gallery schema {meta.get('schema_version')}, "
                               f"this facestyle reads {', '.join(READABLE_SCHEMAS)}")
        stored = self.identity_of(meta, self.location)
        if stored != identity:
            raise GalleryModelMismatchError(
                f"{self.location}: its embeddings come from {stored.describe()}, not {identity.describe()}; "
                f"embeddings of different models are never mixed. Re-embed its people from their stored source "
                f"photos with `facestyle gallery reembed --gallery {self.location}`, or open it with the model that made it"
            )

    def state(self) -> tuple[int, tuple[str, int]]:
        """(generation, key): key changes when the embeddings change other than by appending."""
        try:
            meta = dict(self.execute(self.connect(), "SELECT key, value FROM meta WHERE key IN "
                                     "('generation', 'removed', 'uid')").fetchall())
        except self.errors as exc:
            raise self.broken(exc) from None
        # galleries made before uid and removed existed get them on their first write
        return int(meta["generation"]), (meta.get("uid", "first"), int(meta.get("removed", 0)))

    # -- writing ----------------------------------------------------------------------------------
    def _insert(self, db, rows: list[tuple]) -> int:
        """rows: (name, vector bytes, source_sha256, source_file, box json, created, chip png bytes or None).
        Returns how many embeddings were new."""
        names = list(dict.fromkeys(r[0] for r in rows))
        now = time.time()
        self.executemany(db, "INSERT INTO people (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                         [(n, now) for n in names])
        if len(names) <= _NAMES_PER_QUERY:  # an enrolment: its people only, not a million rows
            ids = dict(self.execute(db, f"SELECT name, id FROM people WHERE name IN ({', '.join('?' * len(names))})",
                                    names).fetchall())
        else:
            ids = dict(self.execute(db, "SELECT name, id FROM people").fetchall())
        return self.executemany(
            db, "INSERT INTO embeddings (person_id, vector, source_sha256, source_file, box, created, chip) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (person_id, source_sha256) DO NOTHING",
            [(ids[n], v, s, f, b, c, chip) for n, v, s, f, b, c, chip in rows]).rowcount

    def add_rows(self, rows: list[tuple]) -> int:
        """Store many embeddings in one transaction; returns how many were new."""
        return self.add_rows_checked([], lambda owners: rows)

    def add_rows_checked(self, source_sha256s: list[str], choose) -> int:
        """One write transaction: ``choose(owners)`` gets, for each of ``source_sha256s`` already enrolled, the
        people it is enrolled under, read under the write lock (so no concurrent writer can enrol the same
        photo between this check and the insert), and returns the rows to store. Returns how many were new."""
        with self.transaction() as db:
            rows = choose(self._owners(db, source_sha256s) if source_sha256s else {})
            added = self._insert(db, rows) if rows else 0
            if added >= BULK_ROWS:
                self.after_bulk_insert(db)
            return added

    def after_bulk_insert(self, db) -> None:
        """Called in the transaction that added ``BULK_ROWS`` or more embeddings at once."""

    def remove(self, name: str) -> int:
        with self.transaction(removal=True) as db:
            row = self.execute(db, "SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise BadInputError(f"{self.location}: nobody called {name!r} is enrolled")
            count = self.execute(db, "SELECT COUNT(*) FROM embeddings WHERE person_id = ?", (row[0],)).fetchone()[0]
            self.execute(db, "DELETE FROM embeddings WHERE person_id = ?", (row[0],))
            self.execute(db, "DELETE FROM people WHERE id = ?", (row[0],))
            return count

    def replace_model(self, identity: ModelIdentity, rows: list[tuple]) -> None:
        """Swap every embedding for ``rows`` made by ``identity``, atomically."""
        with self.transaction(removal=True) as db:
            self.execute(db, "DELETE FROM embeddings")
            self.execute(db, "DELETE FROM people")
            self.execute(db, "DELETE FROM unknowns")  # the old model's embeddings: no use to the new one
            for key, value in (("model", identity.model), ("precision", identity.precision),
                               ("model_sha256", identity.sha256), ("dim", str(identity.dim))):
                self.execute(db, "UPDATE meta SET value = ? WHERE key = ?", (value, key))
            if rows:
                self._insert(db, rows)

    # -- reading ----------------------------------------------------------------------------------
    def people(self) -> list[tuple[str, int]]:
        rows = self.execute(self.connect(),
                            "SELECT p.name, COUNT(e.id) FROM people p LEFT JOIN embeddings e ON e.person_id = p.id "
                            "GROUP BY p.id, p.name ORDER BY p.name").fetchall()
        return [(name, int(count)) for name, count in rows]

    def records(self) -> list[dict]:
        """Every embedding with its person, source and aligned chip (PNG bytes, or None where none was stored)."""
        chip = "e.chip" if self.chip_column else "NULL"
        rows = self.execute(self.connect(),
                            f"SELECT p.name, e.source_sha256, e.source_file, e.box, e.created, e.vector, {chip} "
                            "FROM embeddings e JOIN people p ON p.id = e.person_id ORDER BY p.name, e.id").fetchall()
        return [{"name": n, "source_sha256": s, "source_file": f, "box": json.loads(b) if b else None, "created": c,
                 "embedding": np.frombuffer(v, np.float32).tolist(), "chip": bytes(k) if k is not None else None}
                for n, s, f, b, c, v, k in rows]

    def owners(self, source_sha256s: list[str]) -> dict[str, list[str]]:
        """For each of these photo hashes already enrolled, the people it is enrolled under (outside any
        transaction: for reports only; a write decides under its lock with :meth:`add_rows_checked`)."""
        return self._owners(self.connect(), source_sha256s)

    def _owners(self, db, source_sha256s: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        unique = list(dict.fromkeys(source_sha256s))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            rows = self.execute(db,
                                "SELECT e.source_sha256, p.name FROM embeddings e JOIN people p ON p.id = e.person_id "
                                f"WHERE e.source_sha256 IN ({', '.join('?' * len(chunk))}) ORDER BY e.id", chunk).fetchall()
            for sha, name in rows:
                found.setdefault(sha, []).append(name)
        return found

    def rows_after(self, last_id: int, dim: int) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(ids, names, vectors (n x dim float32)) of the embeddings with id > ``last_id``, in id order."""
        try:
            rows = self.execute(self.connect(),
                                "SELECT e.id, p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id "
                                "WHERE e.id > ? ORDER BY e.id", (last_id,)).fetchall()
        except self.errors as exc:
            raise self.broken(exc) from None
        return rows_as_arrays(rows, dim)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def rows_as_arrays(rows, dim: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(id, name, float32 vector bytes)`` rows -> (ids, names, vectors (n x dim)), one bulk copy."""
    if not rows:
        return np.zeros(0, np.int64), [], np.zeros((0, dim), np.float32)
    ids, names, blobs = zip(*rows)
    vectors = np.frombuffer(b"".join(bytes(b) for b in blobs), np.float32).reshape(len(rows), dim)
    return np.array(ids, np.int64), list(names), vectors
