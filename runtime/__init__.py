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

__version__ = "0.1.0"

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
    # Keep `import facestyle` light: onnxruntime is loaded only when a model is.
    if name == "FaceEmbedder":
        from .face.embedder import FaceEmbedder

        return FaceEmbedder
    raise AttributeError(f"module 'facestyle' has no attribute {name!r}")
