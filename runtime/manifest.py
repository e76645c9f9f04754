"""Sidecar manifests: JSON beside each artifact, the single source of truth for its contract,
threshold, provenance and compatibility. Written atomically (temp file, then rename).

Also an artifact's identity (:class:`ModelIdentity`: model, precision, sha256), which what a model
produced (a gallery's embeddings) records so that it is never mixed with another model's output.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ManifestError

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema", "model", "precision", "artifact", "artifact_sha256", "contract")


@dataclass(frozen=True)
class ModelIdentity:
    """Which artifact produced some output: its model, precision and file sha256 (and embedding size)."""

    model: str
    precision: str
    sha256: str
    dim: int = 128

    def describe(self) -> str:
        return f"{self.model} {self.precision} (sha256 {self.sha256[:12]})"


def default_engines_dir() -> Path:
    """Where artifacts are looked for: ``$FACESTYLE_ENGINES``, else ``./engines``."""
    return Path(os.environ.get("FACESTYLE_ENGINES", "engines"))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, briefly, for every thread)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):
        return 0o022


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either its old content or all of the new, never part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def manifest_path(artifact: str | Path) -> Path:
    """``engines/face-embed/fp32.onnx`` -> ``engines/face-embed/fp32.manifest.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.stem + ".manifest.json")


def write_manifest(path: str | Path, manifest: dict) -> None:
    manifest = {"schema": SCHEMA_VERSION, **manifest}
    atomic_write_bytes(path, (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode())


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest; run `facestyle build` to create the artifacts") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: a manifest must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ManifestError(f"{path}: manifest lacks {', '.join(missing)}")
    if manifest["schema"] != SCHEMA_VERSION:
        raise ManifestError(
            f"{path}: manifest schema {manifest['schema']}, this facestyle reads {SCHEMA_VERSION}; rebuild with `facestyle build`"
        )
    return manifest


def artifact_of(manifest_file: str | Path, manifest: dict, verify: bool = True) -> Path:
    """The artifact a manifest describes, checked against the sha256 it records."""
    artifact = Path(manifest_file).parent / manifest["artifact"]
    if not artifact.is_file():
        raise ManifestError(f"{manifest_file}: its artifact {artifact} is missing; run `facestyle build`")
    if verify and file_sha256(artifact) != manifest["artifact_sha256"]:
        raise ManifestError(
            f"{artifact}: sha256 differs from its manifest {manifest_file}; the file was changed or "
            "half-written: run `facestyle build --force`"
        )
    return artifact


def up_to_date(artifact: str | Path, fingerprint: str) -> dict | None:
    """The manifest beside ``artifact`` if it records ``fingerprint`` and the file on disk is the one it hashed."""
    artifact = Path(artifact)
    try:
        manifest = read_manifest(manifest_path(artifact))
    except ManifestError:
        return None
    if manifest.get("fingerprint") != fingerprint or not artifact.is_file():
        return None
    return manifest if file_sha256(artifact) == manifest.get("artifact_sha256") else None


def update_manifest(path: str | Path, changes: dict) -> dict:
    """Read, change and atomically rewrite a manifest; returns the new content."""
    manifest = read_manifest(path)
    manifest.update(changes)
    write_manifest(path, {k: v for k, v in manifest.items() if k != "schema"})
    return manifest
