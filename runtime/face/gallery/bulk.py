"""Bulk import without photos: a ``gallery export`` JSON (with the face chips), or an ``.npz`` of names and vectors.

The ``.npz`` holds ``names`` (N strings), ``vectors`` (N x dim float32) and the scalar entries
``model``, ``precision``, ``model_sha256`` (the keys ``gallery export`` writes at the top of its
JSON). Either is refused unless that model identity is the gallery's. Loaded without pickle, read
whole only when at most ``MAX_IMPORT_BYTES``, and every entry checked field by field before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import time
from pathlib import Path

import numpy as np

from ...errors import BadImageError, BadInputError, GalleryModelMismatchError
from .api import Gallery
from .names import check_name

IDENTITY_KEYS = ("model", "precision", "model_sha256")
MAX_IMPORT_BYTES = 2 << 30  # a file (or an .npz's unpacked arrays): about 4 million 128-d embeddings
MAX_CHIP_BYTES = 1 << 20  # a face chip's PNG: a 150 x 150 one is 24-34 KB
MAX_CHIP_PIXELS = 1024 * 1024  # far above any face model's input size
MAX_HASH_CHARS = 128  # source_sha256 (64 hex digits, "import:" and 64 for imported entries) and model identity
MAX_PATH_CHARS = 4096
MAX_COORDINATE = 1 << 20
COLUMNS = ("names", "vectors", "shas", "files", "boxes", "created", "chips")  # what _record returns, in order
MAX_FLOAT32 = 3.4e38
MAX_TIMESTAMP = 1e11  # seconds since 1970: the year 5138


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


def _kind(value) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def _number(value) -> bool:
    return type(value) in (int, float)


def _finite(value) -> bool:
    """A JSON number a float32 holds: finite and within float32's range (1e39 would become inf), not a boolean,
    not an integer of hundreds of digits. NaN compares false, so the one comparison refuses it too."""
    return type(value) in (int, float) and abs(value) <= MAX_FLOAT32


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, refused unless it is a regular file of at most ``MAX_IMPORT_BYTES``."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise BadInputError(f"{path}: not a regular file (a device, pipe or folder); expected a .json or .npz file")
        with open(path, "rb") as f:
            data = f.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_IMPORT_BYTES:
        raise BadInputError(f"{path}: over the import limit of {MAX_IMPORT_BYTES >> 20} MiB; split it into several files")
    return data


def _chip(where: str, value) -> bytes | None:
    """A record's ``chip_png`` (base64 text), decoded and checked to be a PNG of a face chip's size."""
    import base64
    import binascii

    from ...images import load_image

    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadInputError(f"{where}: expected base64 text of a PNG, got {_kind(value)}")
    if len(value) > (MAX_CHIP_BYTES + 2) // 3 * 4:
        raise BadInputError(f"{where}: {len(value):,} characters of base64, over the chip limit of {MAX_CHIP_BYTES:,} bytes")
    try:
        chip = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInputError(f"{where}: not base64 ({exc})") from None
    if not chip.startswith(b"\x89PNG\r\n\x1a\n"):
        raise BadInputError(f"{where}: not a PNG (face chips are stored as PNG)")
    try:
        load_image(chip, max_pixels=MAX_CHIP_PIXELS)
    except BadImageError as exc:
        raise BadInputError(f"{where}: {str(exc).removeprefix('<bytes>: ')}") from None
    return chip


def _text(where: str, value, limit: int, required: bool = False) -> str | None:
    if value is None or (value == "" and not required):
        if required:
            raise BadInputError(f"{where}: missing; expected text")
        return None
    if not isinstance(value, str) or not value.isprintable() or not 0 < len(value) <= limit:
        got = _kind(value) if not isinstance(value, str) else (f"{len(value)} characters" if len(value) > limit
                                                               else f"unprintable text {ascii(value)[:60]}")
        raise BadInputError(f"{where}: expected printable text of at most {limit} characters, got {got}")
    return value


def _record(where: str, record, dim: int) -> tuple:
    """One JSON record checked field by field: (name, embedding, source_sha256, source_file, box, created, chip)."""
    if not isinstance(record, dict):
        raise BadInputError(f"{where}: expected an object, got {_kind(record)}")
    if "name" not in record:
        raise BadInputError(f"{where}.name: missing")
    name = check_name(record["name"], f"{where}.name")
    embedding = record.get("embedding")
    if not (isinstance(embedding, list) and len(embedding) == dim and all(_finite(v) for v in embedding)):
        got = f"{len(embedding)} values" if isinstance(embedding, list) else _kind(embedding)
        raise BadInputError(f"{where}.embedding: expected {dim} finite numbers, got {got}")
    sha = _text(f"{where}.source_sha256", record.get("source_sha256"), MAX_HASH_CHARS)
    source = _text(f"{where}.source_file", record.get("source_file"), MAX_PATH_CHARS)
    box = record.get("box")
    if box is not None and not (isinstance(box, list) and len(box) == 4
                                and all(type(v) is int and abs(v) <= MAX_COORDINATE for v in box)):
        raise BadInputError(f"{where}.box: expected null or 4 integers (left, top, right, bottom), got {_kind(box)}")
    created = record.get("created")
    if created is not None and not (_number(created) and 0 <= created <= MAX_TIMESTAMP):
        raise BadInputError(f"{where}.created: expected null or seconds since 1970 (a number from 0 to "
                            f"{MAX_TIMESTAMP:.0e}), got {_kind(created) if not _number(created) else created}")
    return name, embedding, sha, source, box, created, _chip(f"{where}.chip_png", record.get("chip_png"))


def _identity(path: Path, values: dict) -> dict:
    for key in IDENTITY_KEYS:
        _text(f"{path}: {key}", values.get(key), MAX_HASH_CHARS, required=True)
    return {key: values[key] for key in IDENTITY_KEYS}


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays an import needs, from an .npz of at most ``MAX_IMPORT_BYTES``, packed and unpacked."""
    import zipfile

    data = _read_bounded(path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            unpacked = sum(info.file_size for info in npz.zip.infolist())
            missing = [k for k in ("names", "vectors", *IDENTITY_KEYS) if k not in npz.files]
            if unpacked <= MAX_IMPORT_BYTES and not missing:
                return {k: npz[k] for k in ("names", "vectors", *IDENTITY_KEYS)}
    except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile) as exc:
        # not a zip, object arrays (which need pickle), or a header promising more data than there is
        raise BadInputError(f"{path}: not a readable .npz without pickle ({exc})") from None
    if missing:
        raise BadInputError(f"{path}: an import .npz needs {', '.join(missing)} (has {', '.join(npz.files)})")
    raise BadInputError(f"{path}: unpacks to {unpacked >> 20} MiB, over the import limit of {MAX_IMPORT_BYTES >> 20} MiB")


def _read_npz(path: Path, gallery: Gallery) -> dict:
    arrays = _npz_arrays(path)
    for key in IDENTITY_KEYS:
        if arrays[key].ndim != 0 or arrays[key].dtype.kind != "U":
            raise BadInputError(f"{path}: {key}: expected one text value, got an array of shape {arrays[key].shape} "
                                f"and dtype {arrays[key].dtype}")
    _check_model(gallery, path, _identity(path, {k: str(arrays[k].item()) for k in IDENTITY_KEYS}))
    dim = gallery.identity.dim
    names, vectors = arrays["names"], arrays["vectors"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise BadInputError(f"{path}: names: expected a 1-d array of text, got shape {names.shape} and dtype {names.dtype}")
    names = _texts(path, names)
    if vectors.shape != (len(names), dim):
        raise BadInputError(f"{path}: vectors of shape {vectors.shape} for {len(names)} names: expected ({len(names)}, {dim})")
    if vectors.dtype.kind not in "fiu":
        raise BadInputError(f"{path}: vectors of dtype {vectors.dtype}: expected numbers (float32)")
    vectors = vectors.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(vectors).all(1))
    if len(bad):
        raise BadInputError(f"{path}: vectors[{bad[0]}]: expected {dim} finite numbers")
    checked = {}
    for i, name in enumerate(names):
        if name not in checked:
            checked[name] = check_name(name, f"{path}: names[{i}]")
    return {"names": [checked[n] for n in names], "vectors": vectors}


def _texts(path: Path, names: np.ndarray) -> list[str]:
    """An .npz's names as Python text (byte strings decoded as UTF-8)."""
    if names.dtype.kind == "U":
        return names.tolist()
    out = []
    for i, raw in enumerate(names.tolist()):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadInputError(f"{path}: names[{i}]: not UTF-8 text") from None
    return out


def _read_json(path: Path, gallery: Gallery) -> dict:
    try:
        doc = json.loads(_read_bounded(path))
    except RecursionError:
        raise BadInputError(f"{path}: not a gallery export JSON (nested too deeply)") from None
    except ValueError as exc:
        raise BadInputError(f"{path}: not a gallery export JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadInputError(f"{path}: not a gallery export JSON (expected an object at the top, got {_kind(doc)})")
    _check_model(gallery, path, _identity(path, doc))
    records = doc.get("records")
    if not isinstance(records, list):
        raise BadInputError(f"{path}: records: expected a list, got {_kind(records)}")
    entries = [_record(f"{path}: records[{i}]", r, gallery.identity.dim) for i, r in enumerate(records)]
    columns = dict(zip(COLUMNS, (list(column) for column in zip(*entries)))) if entries else {"names": []}
    columns["vectors"] = np.array(columns.get("vectors", []), np.float32).reshape(len(entries), gallery.identity.dim)
    return columns


def _check_model(gallery: Gallery, path: Path, identity: dict) -> None:
    mine = gallery.identity
    theirs = (identity["model"], identity["precision"], identity["model_sha256"])
    if theirs != (mine.model, mine.precision, mine.sha256):
        raise GalleryModelMismatchError(
            f"{path}: its embeddings come from {theirs[0]} {theirs[1]} (sha256 {theirs[2][:12]}), not "
            f"{mine.describe()}, the model of {gallery.store.location}; embeddings of different models are never mixed")


def import_file(gallery: Gallery, file: str | Path) -> tuple[int, int]:
    """Add every embedding of ``file`` (``.json`` from ``gallery export``, or ``.npz``) to ``gallery``.

    Every entry is checked, field by field, before anything is written (BadInputError naming the file, the
    entry and the field); then all are written in one transaction. Returns (embeddings added, embeddings in
    the file); ones already there are skipped, so importing the same file twice adds nothing the second time.
    """
    path = Path(file)
    if path.suffix.lower() not in (".json", ".npz"):
        raise BadInputError(f"{path}: expected a .json (gallery export) or .npz file")
    reader = _read_npz if path.suffix.lower() == ".npz" else _read_json
    entries = reader(path, gallery)
    names, vectors, n = entries["names"], entries["vectors"], len(entries["names"])
    if not n:
        return 0, 0
    shas = entries.get("shas") or [None] * n
    for i, sha in enumerate(shas):
        if not sha:  # no photo behind it: the hash of what is stored, so a second import adds nothing
            shas[i] = "import:" + hashlib.sha256(names[i].encode() + b"\0" + vectors[i].tobytes()).hexdigest()
    now = time.time()
    created = [now if c is None else float(c) for c in entries["created"]] if "created" in entries else None
    rows = gallery.rows(names, vectors, shas, files=entries.get("files"), boxes=entries.get("boxes"), created=created,
                        chips=entries.get("chips"))
    return gallery.store.add_rows(rows), len(rows)
