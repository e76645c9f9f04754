"""facestyle runtime: numpy, Pillow and onnxruntime only (TensorRT optional)."""

from .errors import (
    BackendUnavailableError,
    BadImageError,
    BadInputError,
    EngineMismatchError,
    FacestyleError,
    ManifestError,
    ModelFormatError,
    ParityError,
)

UNKNOWN_VERSION = "0+unknown"  # a source tree imported without being installed: no metadata to read


def installed_version() -> str:
    """pyproject.toml's version, as the installed distribution records it (``facestyle.__version__``)."""
    import importlib.metadata  # on first use: reading it costs more than the rest of `import facestyle`

    try:
        return importlib.metadata.version("facestyle")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


__all__ = [
    "BackendUnavailableError",
    "BadImageError",
    "BadInputError",
    "EngineMismatchError",
    "FacestyleError",
    "ManifestError",
    "ModelFormatError",
    "ParityError",
    "FaceEmbedder",
]


def __getattr__(name):
    # Keep `import facestyle` light: onnxruntime is loaded only when a model is, the metadata when asked for.
    if name == "__version__":
        globals()["__version__"] = version = installed_version()
        return version
    if name == "FaceEmbedder":
        from .face.embedder import FaceEmbedder

        return FaceEmbedder
    raise AttributeError(f"module 'facestyle' has no attribute {name!r}")
