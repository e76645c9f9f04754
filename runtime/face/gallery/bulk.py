"""Bulk import without photos: a ``gallery export`` JSON (with the face chips), or an ``.npz`` of names and vectors.

The ``.npz`` holds ``names`` (N strings), ``vectors`` (N x dim float32) and the scalar entries
``model``, ``precision``, ``model_sha256`` (the keys ``gallery export`` writes at the top of its
JSON). Either is refused unless that model identity is the gallery's. Loaded without pickle.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ...errors import BadInputError, GalleryModelMismatchError
from .api import Gallery

IDENTITY_KEYS = ("model", "precision", "model_sha256")


def export_records(records: list[dict]) -> list[dict]:
    """Store records as JSON-ready dicts: the face chip (PNG bytes) as base64 text under ``chip_png``."""
    import base64

    out = []
    for record in records:
        record = dict(record)
        chip = record.pop("chip", None)
        if chip is not None:
            record["chip_png"] = base64.b64encode(chip).decode("ascii")
        out.append(record)
    return out


def _chips(path: Path, records: list[dict]) -> list[bytes | None]:
    import base64
    import binascii

    try:
        return [base64.b64decode(r["chip_png"], validate=True) if r.get("chip_png") else None for r in records]
    except (binascii.Error, TypeError, ValueError) as exc:
        raise BadInputError(f"{path}: a chip_png is not base64 ({exc})") from None


def _read_npz(path: Path) -> tuple[dict, list[str], np.ndarray, list[dict]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("names", "vectors", *IDENTITY_KEYS) if k not in data.files]
            if missing:
                raise BadInputError(f"{path}: an import .npz needs {', '.join(missing)} (has {', '.join(data.files)})")
            identity = {k: str(data[k].item() if data[k].ndim == 0 else data[k]) for k in IDENTITY_KEYS}
            names, vectors = data["names"], data["vectors"]
            if names.dtype.kind not in "US":
                raise BadInputError(f"{path}: names must be an array of strings, got dtype {names.dtype}")
            names = [str(n) for n in names.tolist()]
            vectors = np.asarray(vectors, np.float32)
    except (OSError, ValueError) as exc:  # not a zip, or object arrays (which would need pickle)
        if isinstance(exc, BadInputError):
            raise
        raise BadInputError(f"{path}: not a readable .npz without pickle ({exc})") from None
    return identity, names, vectors, [{} for _ in names]


def _read_json(path: Path) -> tuple[dict, list[str], np.ndarray, list[dict]]:
    try:
        doc = json.loads(path.read_text())
        identity = {k: str(doc[k]) for k in IDENTITY_KEYS}
        records = doc["records"]
        names = [str(r["name"]) for r in records]
        vectors = np.array([r["embedding"] for r in records], np.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"{path}: not a gallery export JSON ({type(exc).__name__}: {exc})") from None
    return identity, names, vectors, records


def import_file(gallery: Gallery, file: str | Path) -> tuple[int, int]:
    """Add every embedding of ``file`` (``.json`` from ``gallery export``, or ``.npz``) to ``gallery``.

    Returns (embeddings added, embeddings in the file); ones already there are skipped, so importing
    the same file twice adds nothing the second time.
    """
    path = Path(file)
    if path.suffix.lower() not in (".json", ".npz"):
        raise BadInputError(f"{path}: expected a .json (gallery export) or .npz file")
    identity, names, vectors, records = (_read_npz if path.suffix.lower() == ".npz" else _read_json)(path)
    mine = gallery.identity
    theirs = (identity["model"], identity["precision"], identity["model_sha256"])
    if theirs != (mine.model, mine.precision, mine.sha256):
        raise GalleryModelMismatchError(
            f"{path}: its embeddings come from {theirs[0]} {theirs[1]} (sha256 {theirs[2][:12]}), not "
            f"{mine.describe()}, the model of {gallery.store.location}; embeddings of different models are never mixed")
    now = time.time()
    if len(names) and (vectors.ndim != 2 or vectors.shape != (len(names), mine.dim)):
        raise BadInputError(f"{path}: vectors of shape {vectors.shape} for {len(names)} names: "
                            f"expected ({len(names)}, {mine.dim})")
    if not names:
        return 0, 0
    shas = [r.get("source_sha256") for r in records]
    for i, sha in enumerate(shas):
        if not sha:  # no photo behind it: the hash of what is stored, so a second import adds nothing
            shas[i] = "import:" + hashlib.sha256(names[i].strip().encode() + b"\0" + vectors[i].tobytes()).hexdigest()
    rows = gallery.rows(names, vectors, shas, files=[r.get("source_file") for r in records],
                        boxes=[r.get("box") for r in records], created=[float(r.get("created") or now) for r in records],
                        chips=_chips(path, records))
    return gallery.store.add_rows(rows), len(rows)
