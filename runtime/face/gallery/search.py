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
_CHUNK_BYTES = 4 << 20  # of float32 products per chunk of the scan: stays in cache


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


def _first_threshold(rows: np.ndarray, m: int) -> np.ndarray:
    """Per row a value at least its m-th smallest: the m-th smallest of a strided subsample."""
    stride = max(1, min(16, rows.shape[1] // (4 * m)))
    return np.partition(rows[:, ::stride], m - 1, axis=1)[:, m - 1]


def _padded(query_of: np.ndarray, values: np.ndarray, b: int, fill) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (row, value) laid out as a (b, most per row) array, ``fill`` after each row's own; and the slot of each."""
    counts = np.bincount(query_of, minlength=b)
    order = np.argsort(query_of, kind="stable")
    slot = np.empty(len(query_of), np.int64)
    slot[order] = np.arange(len(query_of)) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.full((b, max(1, int(counts.max()))), fill, values.dtype)
    out[query_of, slot] = values
    return out, slot


def _candidates(vectors: np.ndarray, norms: np.ndarray, scaled: np.ndarray, m: int):
    """Per query at least its ``m`` nearest rows, as (query, row) pairs, and per query a cutoff that the
    float32 value ||x||^2 - 2 q.x of every row not returned is at least.

    The matrix is scanned in column chunks small enough to stay in cache (one per query below ~10^6
    rows): each chunk's product, its norms and its comparison with the running threshold happen while
    it is hot, instead of three more passes over a (32, N) result in memory. The threshold starts as
    an upper bound on the m-th smallest (from a subsample of the first chunk) and drops to the m-th
    smallest of the candidates found so far after each chunk.
    """
    b, n = len(scaled), len(vectors)
    width = max(64 * m, _CHUNK_BYTES // (4 * b))  # >= 64m: with m >= n (everything wanted) one chunk
    threshold = None
    query_of, rows, values = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    for c0 in range(0, n, width):
        block = vectors[c0:c0 + width]
        chunk = (block @ scaled[0])[None] if b == 1 else scaled @ block.T
        chunk += norms[c0:c0 + width]
        if threshold is None:
            threshold = _first_threshold(chunk, m) if m < chunk.shape[1] else np.full(b, np.inf, np.float32)
        q, c = np.divmod(np.flatnonzero(chunk <= threshold[:, None]), chunk.shape[1])
        query_of, rows, values = np.r_[query_of, q], np.r_[rows, c + c0], np.r_[values, chunk[q, c]]
        if c0 + width < n:  # tighten: the m-th smallest so far bounds the m-th smallest of all
            threshold = np.minimum(threshold, _mth_smallest(query_of, values, b, m))
            keep = values <= threshold[query_of]
            query_of, rows, values = query_of[keep], rows[keep], values[keep]
    cutoff = np.nextafter(threshold, np.float32(np.inf)).astype(np.float64)
    return _narrowed(query_of, rows, values, cutoff, b, m)


def _mth_smallest(query_of: np.ndarray, values: np.ndarray, b: int, m: int) -> np.ndarray:
    """Per query the m-th smallest of its values (inf where it has fewer)."""
    padded, _ = _padded(query_of, values, b, np.float32(np.inf))
    if padded.shape[1] < m:
        return np.full(b, np.inf, np.float32)
    return np.partition(padded, m - 1, axis=1)[:, m - 1]


def _narrowed(query_of, rows, values, cutoff, b: int, m: int):
    """The ``m`` smallest of each query's candidates, so that only those are re-ranked in float64;
    the cutoff drops to the first value left out."""
    padded, slot = _padded(query_of, values, b, np.float32(np.inf))
    if padded.shape[1] <= m:
        return query_of, rows, cutoff
    where = np.full(padded.shape, -1, np.int64)
    where[query_of, slot] = rows
    order = np.argpartition(padded, m, axis=1)  # column m holds each query's (m+1)-th smallest
    every = np.arange(b)
    cutoff = np.minimum(cutoff, padded[every, order[:, m]])
    kept = where[every[:, None], order[:, :m]]
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
        scaled = (-2 * block).astype(np.float32)  # ||x||^2 - 2 q.x = d^2 - ||q||^2
        found = _certified(matrix, block, scaled, m, k, error, vectors, norms)
        for i, people in enumerate(found):
            size = m
            while people is None:  # rare: more candidates until the certificate holds
                size = min(n, 8 * size)
                people = _certified(matrix, block[i:i + 1], scaled[i:i + 1], size, k, error, vectors, norms)[0]
            found[i] = people
        out.extend(found)
    return out


def _certified(matrix: Matrix, queries, scaled, m: int, k: int, error: float, vectors, norms) -> list:
    """Re-ranked candidates per query, or None where ``m`` candidates cannot prove the top-k exact."""
    query_of, rows, cutoff = _candidates(vectors, norms, scaled, m)
    found = rerank(matrix, queries, query_of, rows, k)
    qq = np.einsum("ij,ij->i", queries, queries)
    everything = m >= len(vectors)
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
        import faiss  # noqa: F401 (imported only to say whether faiss is installed)
    except ImportError:
        return False
    return True
