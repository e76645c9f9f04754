"""Stylizer: photos in, stylised photos out, with the network's contract read from the model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..backends.base import Backend
from ..backends.onnxruntime import OnnxRuntimeBackend
from ..contract import StyleContract
from ..errors import BadImageError, BadInputError, FacestyleError, ManifestError, MissingDependencyError
from ..kinds import KINDS
from ..loading import RunsOnBackend, engines_root, load_built
from ..manifest import read_manifest
from .looks import FACE_STRENGTH, face_mask, keep_faces as blend_faces, preserve_colour as luminance_only
from .resolution import UPSAMPLERS, WORKING_SIDE, check_stroke_scale, resize, shrink, working_size
from .tiles import run_tiled

MODEL_PREFIX = KINDS["style"].model_prefix  # a style's folder: "style-<name>"
# The network's reflection pads need each side longer than the pad at every scale; smaller inputs are padded
# (mirrored, repeatedly where needed) to this side and cropped back, so any image size comes back at its size.
MIN_SIDE = 64


class Stylizer(RunsOnBackend):
    """Applies one trained style to RGB uint8 images of any size.

    >>> stylizer = Stylizer.from_engines("starry_night")
    >>> out = stylizer.stylize(photo, strength=0.8)   # (H, W, 3) uint8 -> (H, W, 3) uint8

    Images whose longer side exceeds ``tile`` are processed in overlapping tiles with feathered
    blending, so memory stays bounded by the tile size whatever the photo's size.
    """

    def __init__(self, backend: Backend, tile: int = 768, overlap: int = 128, source: str = "model",
                 working_side: int = WORKING_SIDE, upsample: str = "lanczos", face_engines: Path | None = None):
        if working_side < 16:
            raise BadInputError(f"working side {working_side}: expected at least 16 pixels")
        if upsample not in UPSAMPLERS:
            raise BadInputError(f"upsample {upsample!r}: expected one of {', '.join(UPSAMPLERS)}")
        self.working_side, self.upsample = working_side, upsample
        self.face_engines, self._detector = face_engines, None
        if overlap < 0 or tile <= 2 * overlap:
            raise BadInputError(f"tile {tile} / overlap {overlap}: expected overlap >= 0 and tile > 2 x overlap")
        self.backend = backend.activate()
        self.contract = StyleContract.from_metadata(backend.metadata, source)
        self.tile, self.overlap = tile, overlap
        self.precision = "fp32"

    @classmethod
    def from_onnx(cls, path: str | Path, providers=("CPUExecutionProvider",), **kwargs) -> Stylizer:
        return cls(OnnxRuntimeBackend(path, providers), source=str(path), **kwargs)

    @classmethod
    def from_engines(cls, style: str, engines_dir: str | Path | None = None, precision: str = "fp32",
                     providers=("CPUExecutionProvider",), backend: str | None = None, **kwargs) -> Stylizer:
        root = engines_root(engines_dir)
        model_name = MODEL_PREFIX + built_style_name(style, precision, root)
        loaded = load_built(root, model_name, precision, providers, backend)
        kwargs.setdefault("face_engines", root)
        stylizer = cls(loaded.backend, source=str(loaded.artifact), **kwargs)
        stylizer.precision = loaded.manifest["precision"]
        return stylizer

    @property
    def name(self) -> str:
        return self.contract.style

    def _run(self, image: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 in the contract's input range -> (h, w, 3) float32 in its output range."""
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32)
        y = self.backend.infer({self.contract.input_name: x})[self.contract.output_name]
        return y[0].transpose(1, 2, 0)

    def _run_tiled(self, x: np.ndarray, on_tile=None) -> np.ndarray:
        # Pad as the network itself would (reflection, split evenly) so that tiles of whole multiples
        # sit on the whole image's sampling grid; the network then adds no padding of its own.
        m = self.contract.size_multiple
        h, w = x.shape[:2]
        pad_h, pad_w = (-h) % m, (-w) % m
        top, left = pad_h // 2, pad_w // 2
        padded = np.pad(x, ((top, pad_h - top), (left, pad_w - left), (0, 0)), mode="reflect")
        reference = self._low_resolution_reference(padded)

        def run_matched(piece: np.ndarray, at: tuple[int, int]) -> np.ndarray:
            # Instance normalisation sees only the tile, so each tile drifts in colour and contrast;
            # matching its per-channel mean and spread to the same region of a whole-image pass at
            # low resolution brings the tiles back to one look (measured in tests/runtime/test_stylizer.py).
            out = self._run(piece)
            region = reference[at[0] : at[0] + piece.shape[0], at[1] : at[1] + piece.shape[1]]
            spread = region.std(axis=(0, 1)) / (out.std(axis=(0, 1)) + 1e-3)
            return (out - out.mean(axis=(0, 1))) * spread + region.mean(axis=(0, 1))

        y = run_tiled(run_matched, padded, self.tile // m * m, self.overlap, align=m, on_tile=on_tile)
        return y[top : top + h, left : left + w]

    def _low_resolution_reference(self, padded: np.ndarray) -> np.ndarray:
        """The whole image stylised at (at most) tile size, resized back to full size, as float32."""
        h, w = padded.shape[:2]
        m, scale = self.contract.size_multiple, self.tile / max(h, w)
        least = -(-MIN_SIDE // m) * m
        small_size = (max(least, round(w * scale) // m * m), max(least, round(h * scale) // m * m))
        channels = [Image.fromarray(np.ascontiguousarray(padded[..., c])).resize(small_size, Image.BILINEAR) for c in range(3)]
        small = self._run(np.stack([np.asarray(c) for c in channels], -1))
        return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(small[..., c])).resize((w, h), Image.BILINEAR))
                         for c in range(3)], -1)

    def stylize(self, image: np.ndarray, strength: float = 1.0, max_side: int | None = None, on_tile=None, *,
                stroke_scale: float = 1.0, preserve_colour: bool = False, keep_faces: bool = False,
                face_strength: float = FACE_STRENGTH) -> np.ndarray:
        """Stylise an (H, W, 3) uint8 RGB image; the result has its size.

        ``strength`` blends with the photo (0: photo, 1: full style). ``stroke_scale``: strokes this many times
        larger relative to the picture than the default, where a photo of any size gets the strokes a
        ``working_side`` (1000 px) photo gets (see :mod:`facestyle.style.resolution`). ``preserve_colour``: the
        photo's colours, the painting's strokes. ``keep_faces``: faces found by the face detector (built in the
        engines folder) get only ``face_strength`` of the style, in a feathered ellipse. ``on_tile(done, total)``:
        told of each tile of a large image (see :func:`facestyle.style.tiles.run_tiled`)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BadImageError(f"image: expected uint8 (H, W, 3) RGB, got {image.dtype}{list(image.shape)}")
        check_share("strength", strength, "the photo", "full style")
        check_share("face strength", face_strength, "the photo in faces", "full style in faces")
        stroke_scale = check_stroke_scale(stroke_scale)
        if max_side is not None:
            image = fit_within(image, max_side)
        h, w = image.shape[:2]
        work_h, work_w = working_size(h, w, stroke_scale, self.working_side)
        smaller = work_h * work_w < h * w
        small = resize(image, work_h, work_w, Image.LANCZOS if smaller else Image.BICUBIC)
        y = self._stylize_pixels(small, on_tile)
        if (work_h, work_w) != (h, w):
            y = UPSAMPLERS[self.upsample](y, small, image) if smaller else shrink(y, h, w)
        if preserve_colour:
            y = luminance_only(y, image)
        if keep_faces:
            boxes = self.face_boxes(small) * np.array([w / work_w, h / work_h] * 2)
            y = blend_faces(y, image, face_mask(h, w, boxes), face_strength)
        y = np.clip(y, 0, 255)  # before the blend: resizing rings past 0..255, and half the style is half the image
        if strength < 1.0:
            y = strength * y + (1.0 - strength) * image.astype(np.float32)
        return np.rint(y).astype(np.uint8)

    def _stylize_pixels(self, image: np.ndarray, on_tile=None) -> np.ndarray:
        """(h, w, 3) uint8 at the working size -> float32 0..255, the network run whole or in tiles."""
        lo, hi = self.contract.input_range
        x = image.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
        h, w = x.shape[:2]
        pad_h, pad_w = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
        top, left = pad_h // 2, pad_w // 2
        if pad_h or pad_w:  # "symmetric" repeats the mirror, so even a 1-pixel side pads
            x = np.pad(x, ((top, pad_h - top), (left, pad_w - left), (0, 0)), mode="symmetric")
        if max(x.shape[:2]) > self.tile:
            y = self._run_tiled(x, on_tile)
        else:
            y = self._run(x)
        y = y[top : top + h, left : left + w]
        out_lo, out_hi = self.contract.output_range
        return (y - out_lo) * np.float32(255.0 / (out_hi - out_lo))

    def face_boxes(self, image: np.ndarray) -> np.ndarray:
        """(N, 4) [left, top, right, bottom] of the faces in ``image``, by the detector of the engines folder."""
        if self._detector is None:
            self._detector = load_face_detector(self.face_engines)
        return self._detector.detect(image).boxes


def check_share(what: str, value: float, zero: str, one: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise BadInputError(f"{what} {value}: expected a value from 0 ({zero}) to 1 ({one})")


def load_face_detector(engines_dir: Path | None):
    """The face detector built beside the styles; a one-line MissingDependencyError where it is not built."""
    from ..face.detector import FaceDetector

    if engines_dir is None:
        raise MissingDependencyError("keep faces: needs the face detector of an engines folder "
                                     "(load the style with Stylizer.from_engines)")
    try:
        return FaceDetector.from_engines(engines_dir)
    except FacestyleError as error:
        raise MissingDependencyError(f"keep faces: needs the face engines (face-detect) in {engines_dir}; run "
                                     f"`facestyle build --out {engines_dir} --models face-detect` ({error})") from None


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscales (never upscales) so that the longer side is at most ``max_side``."""
    if max_side < 16:
        raise BadInputError(f"max side {max_side}: expected at least 16 pixels")
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def built_style_name(style: str, precision: str, engines_dir: str | Path | None = None) -> str:
    """``style`` when it names a style built in ``engines_dir`` at ``precision``; BadInputError listing the built
    styles otherwise. A style is a name, never a path: only the names of the style folders in the engines folder
    match, so the model loaded is always one of that folder's (a folder there may be a link: the engines folder's
    owner put it there)."""
    root = engines_root(engines_dir)
    built = {s["name"]: s["precisions"] for s in list_styles(root)}
    folder = Path(os.path.normpath(root / (MODEL_PREFIX + style)))
    if style not in built or precision not in built[style] or folder.parent != Path(os.path.normpath(root)):
        # Name the styles that are built: a typo or an unbuilt style is the usual cause.
        known = ", ".join(sorted(built)) or "none (run `facestyle build`)"
        raise BadInputError(f"style {style!r} ({precision}) is not built in {root}; built styles: {known}")
    return style


def list_styles(engines_dir: str | Path | None = None) -> list[dict]:
    """The styles built in ``engines_dir``: name, variant, precisions and the training card."""
    root = engines_root(engines_dir)
    styles = []
    for folder in sorted(root.glob(f"{MODEL_PREFIX}*")):
        manifests = sorted(folder.glob("*.manifest.json"))
        if not manifests:
            continue
        try:
            preferred = folder / "fp32.manifest.json"
            fp32 = read_manifest(preferred if preferred.exists() else manifests[0])
        except ManifestError:
            continue
        contract = fp32.get("contract", {})
        styles.append({
            "name": folder.name.removeprefix(MODEL_PREFIX),
            "variant": contract.get("variant"),
            "precisions": sorted(m.name.removesuffix(".manifest.json") for m in manifests),
            "parameters": fp32.get("source", {}).get("parameters"),
            "card": contract.get("card", {}),
            "artifact": str(folder / fp32["artifact"]),
        })
    return styles
