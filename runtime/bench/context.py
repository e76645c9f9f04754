"""What the cases of one run share (:class:`BenchContext`): the photo, its face chips and tensors, the
built variants of each model, a backend of each kind, and the galleries; plus the small helpers
around them. The PyTorch-eager backends come from ``facestyle.export.torch_backend``, imported only
when a torch backend is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..backends.base import Backend
from ..capabilities import BACKEND_KINDS, PRECISIONS, PRECISION_NAMES
from ..errors import BackendUnavailableError, ManifestError, MissingDependencyError, NoFaceError
from ..images import JPEG_QUALITY, encode_image
from ..manifest import artifact_of, read_manifest
from .harness import GALLERY_PEOPLE, BenchConfig
from .machine import package_folder


def default_photo() -> Path:
    """scikit-image's astronaut (Eileen Collins, NASA, public domain): a photo with one clear face."""
    skimage = package_folder("skimage")
    if skimage is None:
        raise MissingDependencyError(
            "no photo to benchmark on: pass --image PATH (a photo with a face), or install scikit-image for its astronaut"
        )
    return skimage / "data" / "astronaut.png"


def built_precisions(engines: Path, model: str) -> dict[str, Path]:
    """{precision: ONNX} for each variant of ``model`` built in ``engines``, checked against its manifest."""
    found = {}
    for precision in PRECISION_NAMES:
        manifest_file = engines / model / f"{precision}.manifest.json"
        if manifest_file.is_file() and (engines / model / f"{precision}.onnx").is_file():
            found[precision] = artifact_of(manifest_file, read_manifest(manifest_file))
    if not found:
        raise ManifestError(f"{engines / model}: no ONNX built; run `facestyle build`")
    return found


def backends_for(config: BenchConfig, precision: str) -> list[str]:
    """The backends asked for that can run ``precision``: torch eager runs the module itself, so only
    the precision that is not derived from it (fp32)."""
    return [b for b in config.backends if BACKEND_KINDS[b].runtime or not PRECISIONS[precision].derived]


def fit_side(image: np.ndarray, side: int) -> np.ndarray:
    """The image scaled (up or down) so that its longer side is ``side`` pixels."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def encode_jpeg(image: np.ndarray) -> bytes:
    return encode_image(image, "JPEG", JPEG_QUALITY)


@contextlib.contextmanager
def closing_runtime(thing) -> Iterator:
    """Closes a FaceEmbedder / FaceDetector / Stylizer when its cases are done (or the run stops)."""
    try:
        yield thing
    finally:
        thing.close()


def torch_backend_module():
    """``facestyle.export.torch_backend``, or BackendUnavailableError when the export extra is absent."""
    try:
        from facestyle.export import torch_backend
    except ImportError as exc:
        raise BackendUnavailableError(f"the torch backends need facestyle.export, not importable here ({exc}): "
                                      "pip install 'facestyle[export]'") from None
    return torch_backend


class BenchContext:
    """What the cases share: the config, the photo and its chips, loaded once; temporary files, removed on close."""

    def __init__(self, config: BenchConfig):
        from ..images import load_image

        self.config = config
        self.photo_path = Path(config.image) if config.image else default_photo()
        self.photo = load_image(self.photo_path)
        self.photo_jpeg = encode_jpeg(self.photo)
        self._chips: np.ndarray | None = None
        self._torch_modules: dict[tuple[str, str], object] = {}
        self._galleries: dict = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="facestyle-bench-")

    def __enter__(self) -> BenchContext:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for gallery in self._galleries.values():
            gallery.close()
        self._galleries.clear()
        self._tmp.cleanup()

    # -- inputs
    def chips(self, batch: int) -> np.ndarray:
        """``batch`` aligned chips of the photo's faces (cycled when it has fewer faces than ``batch``)."""
        if self._chips is None:
            self._chips = self._photo_chips()
        return self._chips[np.arange(batch) % len(self._chips)]

    def _photo_chips(self) -> np.ndarray:
        from ..face.analyzer import FaceAnalyzer

        analyzer = FaceAnalyzer.from_engines(self.config.engines)
        with closing_runtime(analyzer.detector), closing_runtime(analyzer.embedder):
            boxes = analyzer.detector.detect(self.photo).boxes
            if len(boxes) == 0:
                raise NoFaceError(f"{self.photo_path}: no face found (upsample 0); the embedding and end-to-end "
                                  "benchmarks need a photo with a face: pass --image")
            return analyzer.chips(self.photo, boxes)[1]

    def detect_photo(self) -> np.ndarray:
        return fit_side(self.photo, self.config.detect_side)

    def style_tensor(self, size: int, value_range: tuple[float, float]) -> np.ndarray:
        """The photo squeezed to size x size as a (1, 3, S, S) float32 tensor scaled to ``value_range``."""
        pixels = np.asarray(Image.fromarray(self.photo).resize((size, size), Image.BILINEAR), np.float32)
        lo, hi = value_range
        x = pixels * np.float32((hi - lo) / 255.0) + np.float32(lo)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    # -- backends
    def backend(self, kind: str, model: str, onnx: Path, precision: str) -> Backend:
        """The backend ``kind`` for one built model; raises one of UNAVAILABLE when it cannot run here."""
        if not BACKEND_KINDS[kind].runtime:  # a torch-eager reference
            torch_backend = torch_backend_module()
            device = torch_backend.torch_device(BACKEND_KINDS[kind].gpu)
            return torch_backend.TorchBackend(self._torch_module(model, onnx, kind), onnx, device)
        from ..backends.select import select_backend

        return select_backend(onnx, kind, precision=precision)

    def _torch_module(self, model: str, onnx: Path, kind: str):
        key = (model, kind)
        if key not in self._torch_modules:
            self._torch_modules[key] = torch_backend_module().torch_module(model, onnx)
        return self._torch_modules[key]

    def gallery(self, identity):
        """A gallery of GALLERY_PEOPLE people with random embeddings, made once per model identity."""
        from ..face.gallery import Gallery

        if identity not in self._galleries:
            gallery = Gallery.open(Path(self._tmp.name) / f"gallery-{len(self._galleries)}.db", identity)
            rng = np.random.default_rng(0)
            # dlib's embeddings have norms around 0.5-0.6; the spread only matters for realism, not for time.
            for i, vector in enumerate(rng.normal(0, 0.05, (GALLERY_PEOPLE, identity.dim)).astype(np.float32)):
                gallery.add(f"person-{i:04d}", vector, hashlib.sha256(vector.tobytes()).hexdigest())
            self._galleries[identity] = gallery
        return self._galleries[identity]
