"""A snapshot of a SQLite gallery's search matrix beside it, for fast loading.

Reading 10^6 rows out of SQLite takes tens of seconds; this snapshot loads in about a second:
``<file>.matrix.npz`` (ids, owner, norms, names, the key) names ``<file>.matrix.npz.<token>.vectors.npy``
(the float32 vectors, memory-mapped). It is valid for the gallery's key (its uid and
removal counter): rows added after it are fetched from the gallery as usual; any removal or
re-embedding changes the key and the snapshot is rewritten on the next full load. Written to a
temporary file and renamed, so readers never see half of one; loaded without pickle.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import numpy as np

from .search import Matrix

MIN_ROWS = 10_000  # smaller galleries load from the database quickly enough


def _vectors_file(path: Path, token: str) -> Path:
    return path.with_name(f"{path.name}.{token}.vectors.npy")


def read(path: Path, key, dim: int) -> Matrix | None:
    """The snapshot at ``path`` as a Matrix, or None when absent, unreadable or of another key.

    The vectors are memory-mapped copy-on-write: pages come from the page cache as search touches them.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if (str(data["uid"]), int(data["removed"])) != tuple(key) or int(data["dim"]) != dim:
                return None
            ids, owner, norms, names = data["ids"], data["owner"], data["norms"], data["names"]
            vectors = np.load(_vectors_file(path, str(data["token"])), mmap_mode="c", allow_pickle=False)
        if vectors.shape != (len(ids), dim) or vectors.dtype != np.float32:
            return None
        matrix = Matrix(dim, key)
        matrix.restore(ids, owner, names.tolist(), vectors, norms)
        return matrix
    except (OSError, ValueError, KeyError):
        return None


def write(path: Path, matrix: Matrix) -> bool:
    """Snapshot ``matrix`` at ``path``; False when the folder is not writable (the gallery still works)."""
    token = uuid.uuid4().hex[:16]
    vectors = _vectors_file(path, token)
    try:
        old = str(np.load(path, allow_pickle=False)["token"]) if path.exists() else None
    except (OSError, ValueError, KeyError):
        old = None
    try:
        _atomic(vectors, lambda f: np.save(f, matrix.vectors))
        _atomic(path, lambda f: np.savez(
            f, uid=np.array(matrix.key[0]), removed=np.array(matrix.key[1]), dim=np.array(matrix.dim),
            token=np.array(token), ids=matrix.ids, owner=matrix.owner, norms=matrix.norms,
            names=np.array(matrix.names, dtype=str)))
    except OSError:
        vectors.unlink(missing_ok=True)
        return False
    if old and old != token:
        _vectors_file(path, old).unlink(missing_ok=True)  # mapped by a reader? It keeps its pages (POSIX)
    return True


def _atomic(path: Path, fill) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
