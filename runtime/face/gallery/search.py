"""Search over a gallery's embeddings kept in memory: exact (one matrix product) and faiss HNSW.

The matrix is one C-contiguous float32 array (N x D) with the squared norms precomputed, so a query
costs one sgemv (a batch one sgemm): ``||x||^2 - 2 q.x`` ranks the vectors (``||q||^2`` is the same for
all). The few nearest candidates are then re-ranked in float64 from the vectors themselves, so the
distances are those of a float64 computation, and a certificate (the k-th person's distance against
the cutoff of the candidates, with the float32 error bound) proves no other vector could enter the
top-k; a query that fails it is retried with more candidates, up to all of them.

The faiss index (extra ``faiss``) proposes candidates instead of the matrix product; they are
re-ranked the same way. It is persisted beside a SQLite gallery, extended in place after enrolments
and rebuilt when embeddings were removed or replaced.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

SEARCHES = ("auto", "exact", "faiss")
# `auto` uses faiss from this many embeddings on (when faiss is installed): below it an exact query
# takes under ~10 ms on a 2-core machine (benchmarks/results/gallery_search-2core-cpu.json) and
# exact results cost nothing to keep.
AUTO_FAISS_MIN = 200_000
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 80


def hnsw_ef_search(n: int) -> int:
    """efSearch for an n-embedding HNSW graph: recall@1 falls as the graph grows at a fixed efSearch.
    Measured on LFW embeddings + synthetic people (benchmarks/gallery_search.py): 384 gives 0.997-1.0
    at 10^5 but 0.968 at 10^6, where 768 gives 0.978, 1536 0.995 and 3072 0.998."""
    return int(384 * max(1.0, n / 1e5) ** 0.6)


_SLACK = 32  # candidates beyond top_k x (most photos of anyone)
_BLOCK = 32  # queries per matrix-matrix product


class Matrix:
    """Embeddings in memory, in the store's id order, growing in place (capacity doubles)."""

    def __init__(self, dim: int, key=None):
        self.dim, self.key = dim, key  # key: what a change other than an append invalidates
        self.n = 0
        self._ids = np.zeros(0, np.int64)
        self._owner = np.zeros(0, np.int32)
        self._vectors = np.zeros((0, dim), np.float32)
        self._norms = np.zeros(0, np.float32)
        self.names: list[str] = []
        self._person: dict[str, int] = {}
        self._photos = np.zeros(0, np.int64)
        self.max_photos = 0

    ids = property(lambda self: self._ids[: self.n])
    owner = property(lambda self: self._owner[: self.n])
    vectors = property(lambda self: self._vectors[: self.n])
    norms = property(lambda self: self._norms[: self.n])
    last_id = property(lambda self: int(self._ids[self.n - 1]) if self.n else -1)

    def extend(self, ids: np.ndarray, names: list[str], vectors: np.ndarray) -> None:
        """Append rows (ids ascending, after :attr:`last_id`)."""
        add = len(ids)
        if add == 0:
            return
        if self.n + add > len(self._ids):
            capacity = max(self.n + add, 2 * len(self._ids), 1024)
            for attr, shape in (("_ids", (capacity,)), ("_owner", (capacity,)), ("_norms", (capacity,)),
                                ("_vectors", (capacity, self.dim))):
                old = getattr(self, attr)
                grown = np.empty(shape, old.dtype)
                grown[: self.n] = old[: self.n]
                setattr(self, attr, grown)
        for name in dict.fromkeys(names):
            if name not in self._person:
                self._person[name] = len(self.names)
                self.names.append(name)
        owner = np.fromiter((self._person[n] for n in names), np.int32, add)
        end = self.n + add
        self._ids[self.n:end] = ids
        self._owner[self.n:end] = owner
        self._vectors[self.n:end] = vectors
        self._norms[self.n:end] = np.einsum("ij,ij->i", self._vectors[self.n:end], self._vectors[self.n:end])
        self.n = end
        self._photos = np.bincount(self.owner, minlength=len(self.names))
        self.max_photos = int(self._photos.max())

    def restore(self, ids, owner, names: list[str], vectors: np.ndarray, norms) -> None:
        """Take over whole arrays (a snapshot; ``vectors`` may be a copy-on-write memory map)."""
        self._ids, self._owner = np.asarray(ids, np.int64), np.asarray(owner, np.int32)
        self._vectors, self._norms = vectors, np.asarray(norms, np.float32)
        self.n = len(self._ids)
        self.names = list(names)
        self._person = {name: i for i, name in enumerate(self.names)}
        self._photos = np.bincount(self.owner, minlength=len(self.names))
        self.max_photos = int(self._photos.max()) if self.n else 0

    @property
    def people(self) -> int:
        return int(np.count_nonzero(self._photos))


def rerank(matrix: Matrix, queries: np.ndarray, query_of: np.ndarray, rows: np.ndarray,
           k: int) -> list[list[tuple[int, float]]]:
    """Per query the ``k`` nearest people among its candidates, distances in float64, ties by name.

    Candidates come as pairs (``query_of[i]``, ``rows[i]``): a query number and a matrix row number,
    so a whole batch is re-ranked with a few array operations and no Python loop over its rows.
    """
    found: list[list[tuple[int, float]]] = [[] for _ in range(len(queries))]
    if len(rows) == 0:
        return found
    diff = matrix.vectors[rows].astype(np.float64) - queries[query_of]
    distance = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    owner = matrix.owner[rows]
    order = np.lexsort((distance, owner, query_of))  # per query, per person, nearest photo first
    query_of, owner, distance = query_of[order], owner[order], distance[order]
    first = np.r_[True, (query_of[1:] != query_of[:-1]) | (owner[1:] != owner[:-1])]
    query_of, owner, distance = query_of[first], owner[first], distance[first]
    order = np.lexsort((distance, query_of))  # per query, people nearest first
    query_of, owner, distance = query_of[order], owner[order], distance[order]
    starts = np.flatnonzero(np.r_[True, query_of[1:] != query_of[:-1]])
    sizes = np.diff(np.r_[starts, len(query_of)])
    kth = np.repeat(distance[starts + np.minimum(k, sizes) - 1], sizes)
    keep = distance <= kth  # the k nearest and whoever ties with the k-th: names break the ties below
    for q, p, d in zip(query_of[keep].tolist(), owner[keep].tolist(), distance[keep].tolist()):
        found[q].append((p, d))
    names = matrix.names
    for q, people in enumerate(found):
        if len(people) > 1:
            found[q] = sorted(people, key=lambda pd: (pd[1], names[pd[0]]))[:k]
    return found


def _smallest(rows: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row at least ``m`` column numbers holding its ``m`` smallest values, as (row, column) pairs,
    and per row a cutoff that every value not returned is at least."""
    b, n = rows.shape
    if m >= n:
        return np.repeat(np.arange(b), n), np.tile(np.arange(n), b), np.full(b, np.inf)
    stride = max(1, min(16, n // (4 * m)))
    # the m-th smallest of a subsample bounds the m-th smallest of the row from above
    threshold = np.partition(rows[:, ::stride], m - 1, axis=1)[:, m - 1]
    # flatnonzero: numpy's 2-D nonzero is ~10x slower on a (32, 10^5) mask
    query_of, columns = np.divmod(np.flatnonzero(rows <= threshold[:, None]), n)
    cutoff = np.nextafter(threshold, np.float32(np.inf)).astype(np.float64)
    return _narrowed(rows, query_of, columns, cutoff, m)


def _narrowed(rows, query_of, columns, cutoff, m: int):
    """The ``m`` smallest of each row's candidates (up to ~m x stride of them), so that only those
    are re-ranked in float64; the cutoff drops to the first value left out."""
    counts = np.bincount(query_of, minlength=len(rows))
    if counts.max() <= m:
        return query_of, columns, cutoff
    slot = np.arange(len(query_of)) - np.repeat(np.cumsum(counts) - counts, counts)
    values = np.full((len(rows), counts.max()), np.inf, np.float32)
    values[query_of, slot] = rows[query_of, columns]
    where = np.full(values.shape, -1, np.int64)
    where[query_of, slot] = columns
    order = np.argpartition(values, m, axis=1)  # column m holds each row's (m+1)-th smallest
    every = np.arange(len(rows))[:, None]
    cutoff = np.minimum(cutoff, values[every[:, 0], order[:, m]])
    kept = where[every, order[:, :m]]
    query_of, slot = np.nonzero(kept >= 0)
    return query_of, kept[query_of, slot], cutoff


def exact(matrix: Matrix, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per query the exact ``k`` nearest people as (person index, distance)."""
    queries = np.asarray(queries, np.float64)
    vectors = matrix.vectors  # one snapshot: enrolments may extend the matrix meanwhile
    n = len(vectors)
    norms = matrix.norms[:n]
    out = []
    error = 1e-5 * (1.0 + float(norms.max()))  # bound on a row's float32 rounding error, per unit of 1 + |q|^2
    m = min(n, k * matrix.max_photos + _SLACK)
    for start in range(0, len(queries), _BLOCK):
        block = queries[start:start + _BLOCK]
        scaled = (-2 * block).astype(np.float32)
        rows = (vectors @ scaled[0])[None] if len(block) == 1 else scaled @ vectors.T
        rows += norms  # ||x||^2 - 2 q.x = d^2 - ||q||^2
        found = _certified(matrix, block, rows, m, k, error)
        for i, people in enumerate(found):
            size = m
            while people is None:  # rare: more candidates until the certificate holds
                size = min(n, 8 * size)
                people = _certified(matrix, block[i:i + 1], rows[i:i + 1], size, k, error)[0]
            found[i] = people
        out.extend(found)
    return out


def _certified(matrix: Matrix, queries, rows, m: int, k: int, error: float) -> list:
    """Re-ranked candidates per query, or None where ``m`` candidates cannot prove the top-k exact."""
    query_of, columns, cutoff = _smallest(rows, m)
    found = rerank(matrix, queries, query_of, columns, k)
    qq = np.einsum("ij,ij->i", queries, queries)
    everything = m >= rows.shape[1]
    for i, people in enumerate(found):
        kth = people[-1][1] ** 2 - qq[i] if people else np.inf
        if not (everything or (len(people) == k and kth + error * (1 + qq[i]) < cutoff[i])):
            found[i] = None
    return found


class FaissIndex:
    """An HNSW index over a :class:`Matrix`, persisted at ``path`` (None: in memory only)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.index = None
        self.key, self.count, self.last_id, self.saved = None, 0, -1, 0
        self._lock = threading.Lock()

    @staticmethod
    def _faiss():
        try:
            import faiss
        except ImportError:
            from ...errors import MissingDependencyError

            raise MissingDependencyError("search='faiss' needs faiss: pip install 'facestyle[faiss]'") from None
        return faiss

    def _matches(self, matrix: Matrix) -> bool:
        return (self.index is not None and self.key == matrix.key and self.count <= matrix.n
                and (self.count == 0 or int(matrix.ids[self.count - 1]) == self.last_id))

    def sync(self, matrix: Matrix) -> None:
        """Bring the index up to ``matrix``: extend it after appends, rebuild it after anything else."""
        faiss = self._faiss()
        with self._lock:
            if not self._matches(matrix) and self.path is not None:
                self._read(faiss)
            if not self._matches(matrix):
                self.index = faiss.IndexHNSWFlat(matrix.dim, HNSW_M)
                self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
                self.key, self.count, self.last_id, self.saved = matrix.key, 0, -1, 0
            if self.count < matrix.n:
                self.index.add(np.ascontiguousarray(matrix.vectors[self.count:]))
                self.count, self.last_id = matrix.n, matrix.last_id
                if self.path is not None and self.count - self.saved >= max(1000, self.saved // 100):
                    self._write(faiss)

    def search(self, matrix: Matrix, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        queries = np.asarray(queries, np.float64)
        m = min(matrix.n, k * matrix.max_photos + _SLACK)
        faiss = self._faiss()
        with self._lock:  # not while sync() adds to it
            self.index.hnsw.efSearch = max(hnsw_ef_search(matrix.n), m)
            threads = faiss.omp_get_max_threads()
            if len(queries) < 4:  # OpenMP over a query or two only waits on busy cores
                faiss.omp_set_num_threads(1)
            try:
                _, ids = self.index.search(np.ascontiguousarray(queries, np.float32), m)
            finally:
                faiss.omp_set_num_threads(threads)
        query_of, column = np.nonzero(ids >= 0)
        return rerank(matrix, queries, query_of, ids[query_of, column], k)

    def _read(self, faiss) -> None:
        try:
            with open(self.path, "rb") as f:
                header = json.loads(f.readline())
                data = np.fromfile(f, np.uint8)
            self.index = faiss.deserialize_index(data)
        except (OSError, ValueError, RuntimeError):
            return  # absent or unreadable: rebuilt
        self.key = tuple(header["key"])
        self.count = self.saved = int(header["count"])
        self.last_id = int(header["last_id"])

    def _write(self, faiss) -> None:
        header = json.dumps({"key": list(self.key), "count": self.count, "last_id": self.last_id,
                             "hnsw_m": HNSW_M}).encode() + b"\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                faiss.serialize_index(self.index).tofile(f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.saved = self.count


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True
