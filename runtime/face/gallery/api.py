"""The Gallery API: enrolled people in a store (SQLite file or PostgreSQL), searched in memory.

One photo is enough to know a person later: its embedding is stored, and a query face is the enrolled
person at the smallest distance, or "unknown" when even that distance exceeds the threshold. A person
with several photos is as close as their closest photo (minimum distance).

The store records the model (id, precision, sha256) that produced its embeddings; opening it with
another model raises instead of mixing embeddings of different models. Writes are transactions, so
concurrent enrolments lose nothing and a killed process leaves the store consistent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import BadInputError, GalleryError
from ...manifest import ModelIdentity
from .cache import MIN_ROWS as _SNAPSHOT_MIN_ROWS, read as _read_snapshot, write as _write_snapshot
from .names import UNKNOWN, check_name
from .search import AUTO_FAISS_MIN, SEARCHES, FaissIndex, Matrix, exact, faiss_available
from .store import Store


@dataclass(frozen=True)
class Match:
    name: str
    distance: float


@dataclass(frozen=True)
class Identification:
    matches: list[Match]  # nearest people first, at most top_k
    identity: str  # the nearest person's name, or "unknown" beyond the threshold


def open_store(location) -> Store:
    """The store behind ``location``: a ``postgresql://`` URL, else a SQLite file path."""
    from .postgres import PostgresStore, is_url

    if is_url(location):
        return PostgresStore(str(location))
    from .sqlite import SqliteStore

    return SqliteStore(location)


class Gallery:
    """Open with :meth:`open`. Safe to share between threads (one database connection per thread)."""

    def __init__(self, store: Store, identity: ModelIdentity, search: str = "auto"):
        if search not in SEARCHES:
            raise BadInputError(f"search {search!r}: expected one of {', '.join(map(repr, SEARCHES))}")
        self.store, self.identity, self.search = store, identity, search
        self.path = getattr(store, "path", store.location)
        self._lock = threading.Lock()
        self._matrix = Matrix(identity.dim)
        self._generation = None
        self._snapshot_n = 0
        self._faiss = None

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def open(cls, location: str | Path, identity: ModelIdentity, create: bool = True, search: str = "auto",
             write: bool = True) -> Gallery:
        """``location``: a SQLite file, or ``postgresql://user@host:port/db``.

        ``create``: make the gallery if it does not exist. ``write``: False for readers (list, export,
        identify), which then never create, upgrade or otherwise modify it. A file that is not a facestyle
        gallery is refused either way, byte for byte unchanged.

        ``search``: ``exact``; ``faiss`` (extra ``faiss``: an HNSW index, persisted beside a SQLite
        gallery as ``<file>.faiss``, candidates re-ranked exactly); ``auto``: faiss from
        ``search.AUTO_FAISS_MIN`` embeddings on when it is installed, else exact.
        """
        store = open_store(location)
        if not (create and write) and not store.exists():
            raise GalleryError(f"{store.location}: no such gallery; enrol someone to create it")
        gallery = cls(store, identity, search)
        if store.exists():
            store.refuse_foreign()
        store.initialise(identity, write=write)
        return gallery

    @staticmethod
    def stored_identity(location: str | Path) -> ModelIdentity:
        """The model a gallery's embeddings come from, read without opening it for use."""
        from .postgres import is_url

        if is_url(location):
            store = open_store(location)
            if not store.exists():
                raise GalleryError(f"{store.location}: no such gallery; enrol someone to create it")
            try:
                meta = store.meta()
            except store.errors as exc:
                raise store.broken(exc) from None
            finally:
                store.close()
        else:
            from .sqlite import SqliteStore

            meta = SqliteStore.read_meta(location)
        return Store.identity_of(meta, str(location))

    # -- writing --------------------------------------------------------------------------------
    @staticmethod
    def check_name(name: str) -> str:
        """The name trimmed, or BadInputError for one :func:`.names.check_name` refuses."""
        return check_name(name)

    def _checked(self, name: str, vector) -> tuple[str, np.ndarray]:
        name = self.check_name(name)
        vector = np.asarray(vector, np.float32).reshape(-1)
        if vector.shape != (self.identity.dim,) or not np.all(np.isfinite(vector)):
            raise BadInputError(f"embedding for {name!r}: expected {self.identity.dim} finite floats, got shape {vector.shape}")
        return name, vector

    def add(self, name: str, vector: np.ndarray, source_sha256: str, source_file: str | None = None, box=None,
            chip: bytes | None = None) -> bool:
        """Store one embedding of ``name`` (``chip``: its aligned face, PNG); False if this photo was already
        enrolled for them."""
        name, vector = self._checked(name, vector)
        chips = [chip] if chip is not None else None
        return self.store.add_rows(self.rows([name], vector.reshape(1, -1), [source_sha256],
                                             [source_file], [box], chips=chips)) == 1

    def add_many(self, names: list[str], vectors: np.ndarray, source_sha256s: list[str]) -> int:
        """Store many embeddings in one transaction (bulk import); returns how many were new."""
        return self.store.add_rows(self.rows(names, vectors, source_sha256s)) if len(names) else 0

    def rows(self, names, vectors, source_sha256s, files=None, boxes=None, created=None, chips=None,
             stored_names: bool = False) -> list[tuple]:
        """Checked store rows (``store.ROW_FIELDS``) for many embeddings at once, checked like :meth:`add`.
        ``stored_names``: the names were read back from a gallery (re-embedding) and are kept as they are, so a
        name enrolled before the name rule was what it is now is not refused."""
        import json
        import time

        vectors = np.asarray(vectors, np.float32)
        n = len(names)
        if vectors.ndim != 2 or vectors.shape != (n, self.identity.dim) or len(source_sha256s) != n:
            raise BadInputError(f"{n} names, {len(source_sha256s)} hashes and vectors of shape {vectors.shape}: "
                                f"expected as many of each and {self.identity.dim} floats a vector")
        vectors = np.ascontiguousarray(vectors)
        bad = np.flatnonzero(~np.isfinite(vectors).all(1))
        if len(bad):
            raise BadInputError(f"embedding for {names[bad[0]]!r}: expected {self.identity.dim} finite floats")
        if stored_names:
            clean = list(names)
        else:
            checked = {name: check_name(name) for name in dict.fromkeys(names)}
            clean = [checked[name] for name in names]
        now, blob = time.time(), vectors.tobytes()
        size = vectors.shape[1] * 4
        files = files or [None] * n
        boxes = [json.dumps(b) if b is not None else "null" for b in boxes] if boxes else ["null"] * n
        created = created or [now] * n
        chips = chips or [None] * n
        return [(clean[i], blob[i * size:(i + 1) * size], source_sha256s[i], files[i], boxes[i], created[i], chips[i])
                for i in range(n)]

    def remove(self, name: str) -> int:
        """Forget a person; returns how many embeddings went with them."""
        return self.store.remove(name)

    # -- reading --------------------------------------------------------------------------------
    def people(self) -> list[tuple[str, int]]:
        return self.store.people()

    def records(self) -> list[dict]:
        return self.store.records()

    def matrix(self) -> Matrix:
        """The embeddings in memory, brought up to date with the store (rows added since are fetched)."""
        generation, key = self.store.state()
        with self._lock:
            if generation != self._generation:
                snapshot = getattr(self.store, "matrix_cache", None)
                if key != self._matrix.key:
                    restored = _read_snapshot(snapshot, key, self.identity.dim) if snapshot else None
                    self._matrix = restored or Matrix(self.identity.dim, key)
                    self._snapshot_n = self._matrix.n
                ids, names, vectors = self.store.rows_after(self._matrix.last_id, self.identity.dim)
                self._matrix.extend(ids, names, vectors)
                self._generation = generation
                grown = self._matrix.n - self._snapshot_n
                if snapshot and self._matrix.n >= _SNAPSHOT_MIN_ROWS and grown >= max(_SNAPSHOT_MIN_ROWS, self._snapshot_n // 10):
                    if _write_snapshot(snapshot, self._matrix):
                        self._snapshot_n = self._matrix.n
            return self._matrix

    def search_used(self, size: int) -> str:
        """What ``identify`` searches with for a gallery of ``size`` embeddings."""
        if self.search == "auto":
            return "faiss" if size >= AUTO_FAISS_MIN and faiss_available() else "exact"
        return self.search

    def identify(self, queries: np.ndarray, threshold: float, top_k: int = 3) -> list[Identification]:
        """For each query embedding, the ``top_k`` nearest people (minimum distance over their photos)."""
        queries = np.atleast_2d(np.asarray(queries, np.float64))
        if top_k < 1:
            raise BadInputError(f"top_k {top_k}: expected at least 1")
        if queries.shape[1] != self.identity.dim:
            raise BadInputError(f"query embeddings of shape {queries.shape}: expected {self.identity.dim} floats each")
        matrix = self.matrix()
        if matrix.n == 0:
            return [Identification([], UNKNOWN) for _ in queries]
        k = min(top_k, matrix.people)
        if self.search_used(matrix.n) == "faiss":
            with self._lock:
                if self._faiss is None:
                    self._faiss = FaissIndex(self.store.faiss_path)
            self._faiss.sync(matrix)
            found = self._faiss.search(matrix, queries, k)
        else:
            found = exact(matrix, queries, k)
        results = []
        for row in found:
            matches = [Match(matrix.names[p], d) for p, d in row]
            identity = matches[0].name if matches and matches[0].distance <= threshold else UNKNOWN
            results.append(Identification(matches, identity))
        return results

    def close(self) -> None:
        self.store.close()
