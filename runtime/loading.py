"""Loading what ``facestyle build`` wrote: manifest -> artifact checked by its sha256 -> a backend.

Every ``from_engines`` loader (FaceEmbedder, FaceDetector, Stylizer, ShapePredictor) goes through
here, so each checks its artifact the same way and fails with the same messages. An artifact lives
at ``<engines>/<model>/<precision>.<suffix>`` with its manifest ``<precision>.manifest.json`` beside
it; model folder names come from ``facestyle.kinds``.

>>> loaded = load_built("engines", "face-embed", "fp16", backend="auto")
>>> loaded.manifest["threshold"], loaded.artifact, loaded.sha256, loaded.backend

The artifact is hashed once, here, when its manifest is checked; that sha256 is the model's identity
(what a gallery records), handed to the model class instead of being computed again.

It also holds the one lifecycle the model classes share: ``close()`` releases what a model holds
(its backend's InferenceSession or engine), idempotently, and a ``with`` block closes on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .backends.base import Backend
from .cpu import warn_if_saturating
from .manifest import artifact_of, default_engines_dir, read_manifest


@dataclass(frozen=True)
class Built:
    """An artifact found by its manifest and checked against the sha256 the manifest records."""

    manifest_file: Path
    manifest: dict
    artifact: Path

    @property
    def sha256(self) -> str:
        """The artifact's sha256: the manifest's, which the file was checked against when found."""
        return self.manifest["artifact_sha256"]


@dataclass(frozen=True)
class Loaded(Built):
    """A built ONNX artifact, and the backend that runs it (activated by the model class that takes it)."""

    backend: Backend


def engines_root(engines_dir: str | Path | None) -> Path:
    """``engines_dir``, or the default (``$FACESTYLE_ENGINES``, else ``./engines``)."""
    return Path(engines_dir or default_engines_dir())


def manifest_file_of(engines_dir: str | Path | None, model_name: str, precision: str) -> Path:
    """Where ``facestyle build`` writes the manifest of ``model_name`` at ``precision``."""
    return engines_root(engines_dir) / model_name / f"{precision}.manifest.json"


def find_built(engines_dir: str | Path | None, model_name: str, precision: str) -> Built:
    """The manifest and its checked artifact; ManifestError naming the file when either is wrong."""
    manifest_file = manifest_file_of(engines_dir, model_name, precision)
    manifest = read_manifest(manifest_file)
    return Built(manifest_file, manifest, artifact_of(manifest_file, manifest))


def load_built(engines_dir: str | Path | None, model_name: str, precision: str = "fp32",
               providers=("CPUExecutionProvider",), backend: str | None = None) -> Loaded:
    """A built ONNX model with its backend: ``backend`` (a kind of ``facestyle.capabilities``) or ORT ``providers``."""
    built = find_built(engines_dir, model_name, precision)
    # Imported here: selection reaches the TensorRT and CUDA probes, which a model loaded on the CPU never needs.
    from .backends.select import backend_for

    runner = backend_for(built.artifact, backend, providers, precision, built.sha256)
    warn_if_saturating(built.manifest, str(built.manifest_file), getattr(runner, "requested_providers", ()))
    return Loaded(built.manifest_file, built.manifest, built.artifact, runner)


class Closeable:
    """``with model: ...`` closes the model on the way out, also when the block raises."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RunsOnBackend(Closeable):
    """A model class that runs on one :class:`Backend`: closing it deactivates the backend.

    Idempotent: a backend deactivates once, and a second close does nothing.
    """

    backend: Backend

    def close(self) -> None:
        self.backend.deactivate()
