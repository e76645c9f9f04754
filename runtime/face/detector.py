"""FaceDetector: dlib's MMOD CNN face detector, with boxes identical to ``dlib.cnn_face_detection_model_v1``.

Only the convolution stack runs in the inference backend (``engines/face-detect``). Everything
around it is numpy code here that follows dlib's own arithmetic, step by step:

1. ``upsample`` times ``pyramid_up`` (the Python API's ``upsample_num_times``): the uint8 RGB image
   is resized by ``resize_image(..., interpolate_bilinear)`` to the size ``pyramid_down<2>::rect_up``
   gives, ``(2*H + 1, 2*W + 2)``, with dlib's SIMD column positions (float32, accumulated 4 columns at a
   time, truncated) and its double-precision tail loop (``image_transforms/interpolation.h``).
2. The tiled pyramid (``dnn/input.h``, ``image_transforms/image_pyramid.h``): level sizes
   ``floor((N-1)/N * size)`` until a level is under 5 rows; one column of levels, then the rest packed
   right to left along the bottom, exactly as ``compute_tiled_image_pyramid_details`` does it,
   including its UNSIGNED comparisons. Level 0 is ``(pixel - mean) * scale``; each further level is the
   previous level's region resized by dlib's float bilinear ``resize_image`` (emulated operation for
   operation; any align-corners bilinear resize would give the same boxes, but scores move by up to
   3e-3, while this keeps them within ~1e-5 of dlib's).
3. Decoding (``loss_mmod_::to_label``): every score cell above the threshold becomes a window of
   ``window`` tensor pixels centred on ``(stride*c + offset, stride*r + offset)``
   (``centered_drect``, half-sizes ``(w-1)/2``), mapped to image space by the level whose rectangle
   holds (or is nearest to) its rounded centre and ``point_up`` ``p*N/(N-1) + 0.3`` once per level,
   rounded with ``std::lround``; sorted by score (descending, stable), then greedy NMS with dlib's
   ``test_box_overlap`` (intersection over the area of the BOUNDING BOX of both, inclusive areas).
4. With ``upsample``, boxes go back through ``pyramid_down<2>::rect_down`` (``p/2 - (1.25, 0.75)``
   per level) and ``std::lround``.

Every constant of steps 2-3 comes from the model's ``DetectorContract`` (its ONNX metadata).
Rectangles are dlib's: ``[left, top, right, bottom]`` inclusive, so a box is ``right - left + 1`` wide,
and may reach outside the image (negative or beyond the last pixel) exactly as dlib's do.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backends.base import Backend
from ..backends.onnxruntime import OnnxRuntimeBackend
from ..contract import DetectorContract
from ..errors import BadImageError, BadInputError
from ..kinds import KINDS
from ..loading import RunsOnBackend, load_built
from .fast_pyramid import resize_levels
from .sampling import row_positions, simd_columns, tail_columns

__all__ = [
    "Detections",
    "FaceDetector",
    "build_pyramid_tensor",
    "decode_scores",
    "lround",
    "nms",
    "pyramid_level_sizes",
    "pyramid_up",
    "rect_down",
    "resize_bilinear_planes",
    "resize_bilinear_rgb",
    "tiled_pyramid_layout",
]

MODEL_NAME = KINDS["face-detect"].name  # its folder in the engines directory
MIN_LEVEL_HEIGHT = 5  # compute_tiled_image_pyramid_details: stop before a level under 5 rows
_U64 = (1 << 64) - 1  # unsigned long arithmetic, for the tile layout's comparisons
_CHUNK_ELEMENTS = 1 << 16  # output values resized per step: bounds temporaries, keeps them in cache
# The most pixels the detector looks at (after upsampling): 1920x1080, a 1080p frame whole, a 4K frame halved.
# Its pyramid tensor and the network's activations cost about DETECT_BYTES_PER_PIXEL each; a larger image (or
# upsampling past it) is resized to fit first, which bounds the detector's memory and time whatever the image size.
MAX_DETECT_PIXELS = 1920 * 1080
DETECT_BYTES_PER_PIXEL = 170  # peak bytes per pixel looked at (pyramid + activations); ~150 measured (x86-64)
MIN_FACE_SIDE = 80  # the detector's window: faces smaller than this (in the image it looks at) are missed
REUSED_PIXELS = 1280 * 720  # frames up to this size keep their pyramid buffers per thread (~60 MB at most)
IMAGE_BYTES_PER_PIXEL = 16  # decoding's peak: Pillow's buffers and numpy's copies (~15 measured for PNG), per pixel



@dataclass(frozen=True)
class Detections:
    """Faces found in one image, best first.

    ``boxes``: (N, 4) int64 ``[left, top, right, bottom]``, dlib's inclusive rectangles (identical
    integers to ``mmod_rectangle.rect``); ``scores``: (N,) float32 detector confidences.
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.int64), np.zeros(0, np.float32))


# --------------------------------------------------------------------------------------------
# Rounding and rectangles


def lround(x) -> np.ndarray:
    """``std::lround``: to nearest, halves away from zero (Python's round() and np.round go to even)."""
    x = np.asarray(x, np.float64)
    whole = np.trunc(x)
    away = np.abs(x - whole) >= 0.5  # x - trunc(x) is exact in double
    return (whole + np.copysign(away, x)).astype(np.int64)


def rect_down(boxes: np.ndarray, times: int) -> np.ndarray:
    """``pyramid_down<2>::rect_down(rect, times)`` then ``std::lround``: boxes of a ``pyramid_up``-ed image
    back in the original image."""
    out = np.asarray(boxes, np.float64).copy()
    offset = np.array([1.25, 0.75, 1.25, 0.75])
    for _ in range(times):
        out = out / 2.0 - offset
    return lround(out)


# --------------------------------------------------------------------------------------------
# Tiled pyramid layout


def pyramid_level_sizes(nr: int, nc: int, downsample: int, min_height: int = MIN_LEVEL_HEIGHT) -> list[tuple[int, int]]:
    """(rows, cols) of every level of ``pyramid_down<downsample>``, level 0 first (dlib's loop)."""
    if nr * nc == 0:
        return []
    rate = (downsample - 1.0) / downsample
    sizes = [(nr, nc)]
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < min_height:
            return sizes
        sizes.append((nr, nc))


def tiled_pyramid_layout(
    nr: int, nc: int, downsample: int, padding: int, outer_padding: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """``impl::compute_tiled_image_pyramid_details``: where each level lies in the tiled image.

    Returns ``(rects, (rows, cols))``: rects is (L, 4) int64 ``[left, top, right, bottom]`` (inclusive),
    level 0 first. dlib's first-column test compares ``rectangle::width()/height()`` results, which are
    unsigned longs, so those expressions are evaluated modulo 2**64 here as in C++.
    """
    sizes = pyramid_level_sizes(nr, nc, downsample)
    if not sizes:
        return np.zeros((0, 4), np.int64), (0, 0)
    h0, w0 = sizes[0]
    total_height = sum(h + padding for h, _ in sizes) - padding * 2
    height = prev_width = 0
    for h, w in sizes:
        room = (w0 - prev_width - padding) & _U64  # rects[0].width() - prev_width - (long)padding
        climbed = ((height - h0) & _U64) * 2 & _U64  # (height - rects[0].height()) * 2
        needed = (total_height - h0) & _U64  # total_height - rects[0].height()
        if w <= room and climbed >= needed:
            break
        height += h + padding
        prev_width = w
    height -= padding
    width = w0

    # Untranslated rects are rectangle(nc, nr) = [0, 0, nc-1, nr-1], as in dlib before placement.
    rects = [[0, 0, w - 1, h - 1] for h, w in sizes]
    y, i = outer_padding, 0
    while y < height + outer_padding and i < len(rects):
        h, w = sizes[i]
        rects[i] = [outer_padding, y, outer_padding + w - 1, y + h - 1]
        y += h + padding
        i += 1
    y -= padding
    while i < len(rects):
        h, w = sizes[i]
        right, bottom = outer_padding + width - 1, y - 1
        rect = [right - (w - 1), bottom - (h - 1), right, bottom]
        first = rects[0]
        if max(first[0], rect[0]) <= min(first[2], rect[2]) and max(first[1], rect[1]) <= min(first[3], rect[3]):
            break  # don't keep going on the bottom row if it would overlap level 0
        rects[i] = rect
        y -= h + padding
        i += 1
    return np.asarray(rects[:i], np.int64).reshape(-1, 4), (height + outer_padding * 2, width + outer_padding * 2)


# --------------------------------------------------------------------------------------------
# dlib's bilinear resize_image


def _resize_planes_into(
    planes: np.ndarray, offset: int, row_stride: int, in_rows: int, in_cols: int, out: np.ndarray, integer: bool
) -> None:
    """dlib's bilinear ``resize_image`` of C planes into ``out`` (C, out_rows, out_cols), any dtype view.

    ``planes`` is (C, N) contiguous; input pixel (r, c) of plane k is ``planes[k, offset + r*row_stride + c]``
    (so a region of the tiled tensor is read in place). ``integer``: dlib's uint8 RGB overload (SIMD
    results truncated, tail blended in double with a double column fraction); otherwise its float
    overload (tail column fraction in float32, row blend in double).
    """
    channels, out_rows, out_cols = out.shape
    if out.size == 0 or in_rows * in_cols == 0:
        return
    top, bottom, tb = row_positions(in_rows, out_rows)
    done, left, lr = simd_columns(in_cols, out_cols)
    tb32, inv_tb32 = tb.astype(np.float32), (1 - tb).astype(np.float32)
    inv_lr = np.float32(1) - lr
    top_at = offset + top * row_stride  # flat index of each output row's top input row
    below = (bottom - top) * row_stride
    step = max(1, _CHUNK_ELEMENTS // max(out_cols, 1))
    if done:
        for r0 in range(0, out_rows, step):
            rows = slice(r0, min(r0 + step, out_rows))
            a, b = inv_tb32[rows, None], tb32[rows, None]
            weights = (a * inv_lr, a * lr, b * inv_lr, b * lr)  # tlf, trf, blf, brf (float32)
            tl = top_at[rows, None] + left
            bl = tl + below[rows, None]
            corners = (tl, tl + 1, bl, bl + 1)
            acc = np.empty(tl.shape, np.float32)
            tmp = np.empty(tl.shape, np.float32)
            for k in range(channels):
                plane = planes[k]
                np.multiply(weights[0], np.take(plane, corners[0]), out=acc)
                for w, idx in zip(weights[1:], corners[1:]):  # ((tl + tr) + bl) + br, in float32
                    np.multiply(w, np.take(plane, idx), out=tmp)
                    acc += tmp
                np.copyto(out[k, rows, :done], acc, casting="unsafe")  # uint8: truncation, like simd4i
    if done < out_cols:
        t_left, t_right, t_lr = tail_columns(in_cols, out_cols, done)
        if not integer:
            t_lr = t_lr.astype(np.float32)  # the float overload keeps lr_frac in a float
        t_inv = (1 - t_lr).astype(t_lr.dtype)
        frac = tb[:, None]
        for k in range(channels):
            plane = planes[k]
            upper = [np.take(plane, top_at[:, None] + c).astype(t_lr.dtype) for c in (t_left, t_right)]
            lower = [np.take(plane, top_at[:, None] + below[:, None] + c).astype(t_lr.dtype) for c in (t_left, t_right)]
            upper_mix = (t_inv * upper[0] + t_lr * upper[1]).astype(np.float64)
            lower_mix = (t_inv * lower[0] + t_lr * lower[1]).astype(np.float64)
            np.copyto(out[k, :, done:], (1 - frac) * upper_mix + frac * lower_mix, casting="unsafe")


def resize_bilinear_planes(src: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """dlib's ``resize_image(in, out, interpolate_bilinear)`` for float images, on each plane of (C, H, W).

    This is the path ``tt::resize_bilinear`` takes for the DNN input pyramid (float32 sub-images):
    float32 SIMD blocks of 4 columns, ``((tlf*tl + trf*tr) + blf*bl) + brf*br`` with float32 weights,
    then a scalar tail whose row blend is done in double.
    """
    src = np.ascontiguousarray(src, np.float32)
    channels, in_rows, in_cols = src.shape
    out = np.empty((channels, out_rows, out_cols), np.float32)
    _resize_planes_into(src.reshape(channels, -1), 0, in_cols, in_rows, in_cols, out, integer=False)
    return out


def resize_bilinear_rgb(image: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """dlib's ``resize_image(in, out, interpolate_bilinear)`` for uint8 RGB images (its rgb overload):
    float32 SIMD blocks truncated to integers, then a scalar tail in double, also truncated."""
    in_rows, in_cols, channels = image.shape
    planes = np.ascontiguousarray(np.moveaxis(image, -1, 0)).reshape(channels, -1)
    out = np.empty((channels, out_rows, out_cols), np.uint8)
    _resize_planes_into(planes, 0, in_cols, in_rows, in_cols, out, integer=True)
    return np.ascontiguousarray(np.moveaxis(out, 0, -1))


def pyramid_up(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_up(img, pyramid_down<2>)``: the image resized to ``rect_up`` of its rectangle.

    ``point_up`` is ``(p + (1.25, 0.75)) * 2``; the corners are rounded with ``std::lround``, so an
    (H, W) image becomes (2H + 1, 2W + 2).
    """
    rows, cols = image.shape[:2]
    if rows * cols == 0:
        return np.zeros((0, 0, 3), np.uint8)
    out_cols = int(lround((cols - 1 + 1.25) * 2)) + 1
    out_rows = int(lround((rows - 1 + 0.75) * 2)) + 1
    return resize_bilinear_rgb(image, out_rows, out_cols)


# --------------------------------------------------------------------------------------------
# Tensor, decoding, NMS


def build_pyramid_tensor(image: np.ndarray, contract: DetectorContract, exact: bool = False,
                         buffers: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``input_rgb_image_pyramid::to_tensor``: the (1, 3, NR, NC) float32 tiled pyramid and its level rects.

    Zeros everywhere but the levels (zero is the mean colour after normalisation). Level 0 is
    ``(pixel - channel_mean) * scale`` in float32 (exact for dlib's scale 1/256); level i is level i-1's
    region of the tensor resized at dlib's sample positions: by default separably
    (:mod:`facestyle.face.fast_pyramid`, same boxes, scores within ~1e-5), with ``exact`` by
    :func:`resize_bilinear_planes`, dlib's arithmetic operation for operation. ``buffers`` (a dict the
    caller keeps, one per thread) reuses the tensor of the last image of the same size: only the levels
    are written, so its zero padding stays zero, and a 640x480 frame saves a 14 MB allocation.
    """
    rows, cols = image.shape[:2]
    rects, (nr, nc) = tiled_pyramid_layout(
        rows, cols, contract.pyramid_downsample, contract.pyramid_padding, contract.pyramid_outer_padding
    )
    if len(rects) == 0 or not _inside(rects, nr, nc):
        # dlib's layout is degenerate for images under ~10 px wide (e.g. 300x9) and some of 1-5 px:
        # it puts levels outside its tensor (then fails an assert or corrupts memory). No faces here.
        return np.zeros((1, 3, max(nr, 0), max(nc, 0)), np.float32), rects[:0]
    tensor = _zeroed_tensor(buffers, (1, 3, nr, nc))
    pixels = image[..., ::-1] if contract.channel_order == "BGR" else image
    mean = np.asarray(contract.channel_mean, np.float32)[:, None, None]
    left, top, right, bottom = rects[0]
    level0 = tensor[0, :, top : bottom + 1, left : right + 1]
    np.subtract(np.moveaxis(pixels, -1, 0), mean, out=level0, dtype=np.float32)
    level0 *= np.float32(contract.scale)
    if not exact:
        resize_levels(tensor, rects, buffers)
        return tensor, rects
    planes = tensor[0].reshape(3, -1)  # a view: each level is read from and written to the tensor
    for (l0, t0, r0, b0), (l1, t1, r1, b1) in zip(rects[:-1], rects[1:]):
        level = tensor[0, :, t1 : b1 + 1, l1 : r1 + 1]
        _resize_planes_into(planes, int(t0 * nc + l0), nc, int(b0 - t0 + 1), int(r0 - l0 + 1), level, False)
    return tensor, rects


def _zeroed_tensor(buffers: dict | None, shape: tuple[int, ...]) -> np.ndarray:
    if buffers is None:
        return np.zeros(shape, np.float32)
    if shape not in buffers:
        buffers.clear()  # one size at a time: a camera's frames
        buffers[shape] = np.zeros(shape, np.float32)
    return buffers[shape]


def _nearest_rect(rects: np.ndarray, points: np.ndarray) -> np.ndarray:
    """dlib's ``nearest_rect``: the first rect containing each (integer) point, else the first nearest."""
    x, y = points[:, :1], points[:, 1:]
    inside = (x >= rects[:, 0]) & (x <= rects[:, 2]) & (y >= rects[:, 1]) & (y <= rects[:, 3])
    dx = np.clip(x, rects[:, 0], rects[:, 2]) - x
    dy = np.clip(y, rects[:, 1], rects[:, 3]) - y
    nearest = np.argmin(np.sqrt((dx * dx + dy * dy).astype(np.float64)), axis=1)
    return np.where(inside.any(axis=1), np.argmax(inside, axis=1), nearest)


def decode_scores(
    scores: np.ndarray, rects: np.ndarray, contract: DetectorContract, threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``loss_mmod_::tensor_to_dets``: score map (rows, cols) -> integer boxes in the tiled image's source
    image and their scores, best first (stable for ties, as ``std::sort(rbegin, rend)`` in practice)."""
    threshold = contract.score_threshold if threshold is None else threshold
    r, c = np.nonzero(scores.astype(np.float64) > threshold)  # row-major: dlib's scan order
    if len(r) == 0 or len(rects) == 0:
        return np.zeros((0, 4), np.int64), np.zeros(0, np.float32)
    found = scores[r, c].astype(np.float32)
    px = (contract.cell_stride * c + contract.cell_offset).astype(np.float64)
    py = (contract.cell_stride * r + contract.cell_offset).astype(np.float64)
    half_w, half_h = (contract.window[0] - 1.0) / 2, (contract.window[1] - 1.0) / 2
    box = np.stack([px - half_w, py - half_h, px + half_w, py + half_h], axis=1)  # centered_drect

    # tiled_pyramid_to_image: the level nearest the rounded centre, then point_up once per level
    centre = np.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2], axis=1)
    level = _nearest_rect(rects, np.floor(centre + 0.5).astype(np.int64))  # dpoint -> point
    box = box - rects[level][:, [0, 1, 0, 1]]
    ratio = contract.pyramid_downsample / (contract.pyramid_downsample - 1.0)
    for k in range(int(level.max(initial=0))):
        up = level > k
        box[up] = box[up] * ratio + 0.3
    boxes = lround(box)  # intermediate_detection stores a rectangle

    order = np.argsort(-found, kind="stable")
    return boxes[order], found[order]


def nms(boxes: np.ndarray, iou: float, covered: float) -> np.ndarray:
    """Greedy NMS over boxes sorted best first with dlib's ``test_box_overlap(iou, covered)``.

    A box is dropped when, against any kept box, intersection / area(bounding box of both) > iou, or
    intersection / area(either) > covered; areas of inclusive rects. Returns the kept indices. Each kept
    box is tested against all later boxes at once (the test is symmetric), so the work is kept x N.
    """
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    l, t, r, b = (boxes[:, i] for i in range(4))
    areas = ((r - l + 1) * (b - t + 1)).astype(np.float64)
    suppressed = np.zeros(len(boxes), bool)
    kept: list[int] = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        kept.append(i)
        iw = np.minimum(r, r[i]) - np.maximum(l, l[i]) + 1
        ih = np.minimum(b, b[i]) - np.maximum(t, t[i]) + 1
        inner = (np.maximum(iw, 0) * np.maximum(ih, 0)).astype(np.float64)
        outer = (np.maximum(r, r[i]) - np.minimum(l, l[i]) + 1) * (np.maximum(b, b[i]) - np.minimum(t, t[i]) + 1)
        suppressed |= (inner > 0) & ((inner / outer > iou) | (inner / areas > covered) | (inner / areas[i] > covered))
    return np.asarray(kept, np.int64)


# --------------------------------------------------------------------------------------------
# The detector


def _as_rgb(image) -> np.ndarray:
    """(H, W, 3) uint8 RGB as is; (H, W) or (H, W, 1) uint8 grey stacked to RGB (what dlib's Python API
    does with 8-bit grey). Anything else raises BadImageError saying what was expected."""
    if not isinstance(image, np.ndarray):
        raise BadImageError(
            f"image: expected a numpy array, uint8 (H, W, 3) RGB or (H, W) grey, got {type(image).__name__}"
        )
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise BadImageError(
            f"image: expected uint8 (H, W, 3) RGB or (H, W) grey, got {image.dtype}{list(image.shape)}"
            + (" (convert RGBA to RGB first)" if image.ndim == 3 and image.shape[2] == 4 else "")
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise BadImageError(f"image: expected at least 1x1 pixels, got an empty {list(image.shape)} array")
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image


class FaceDetector(RunsOnBackend):
    """Finds faces the way ``dlib.cnn_face_detection_model_v1(path)(image, upsample)`` does.

    >>> detector = FaceDetector.from_engines("engines")
    >>> found = detector.detect(image)            # (H, W, 3) uint8 RGB
    >>> found.boxes, found.scores                  # (N, 4) int64 [l, t, r, b] inclusive, (N,) float32

    ``upsample`` doubles the image that many times first (finds faces down to ~40 px at 1, ~20 at 2);
    each time costs about 4x. Images too small to hold a face give no detections and no error, also
    where dlib itself fails: under ~7 px a side (the unpadded convolutions have nothing to look at) or
    so narrow that dlib's tile layout puts level 0 outside its tensor (e.g. 300x9).

    Work and memory are bounded: the detector looks at most at ``max_pixels`` pixels (default
    MAX_DETECT_PIXELS, 1920x1080, upsampling included). A larger image is first resized to fit and its
    boxes mapped back, so the smallest face found grows with it: about ``80 * sqrt(W * H / max_pixels)``
    px wide instead of ~80 px (a 3840x2160 frame: ~160 px; 8000x8000: ~490 px), and those boxes are no
    longer dlib's integers (dlib's are kept for any image within the budget). Peak memory over the
    loaded models is :func:`peak_bytes`: DETECT_BYTES_PER_PIXEL (170) per pixel looked at, so at most
    ~350 MB per detecting thread, plus IMAGE_BYTES_PER_PIXEL (16) per image pixel for decoding it
    (16 MB per megapixel: ~1 GB for the largest image load_image accepts, 8000x8000).
    """

    def __init__(self, backend: Backend, source: str = "model", max_pixels: int = MAX_DETECT_PIXELS):
        if max_pixels < 1:
            raise BadInputError(f"max_pixels {max_pixels}: expected a positive number of pixels")
        self.max_pixels = int(max_pixels)
        self.backend = backend.activate()
        self.contract = DetectorContract.from_metadata(backend.metadata, source)
        # The first score cell looks at tensor point cell_offset: the unpadded convolutions before it
        # need 2*cell_offset + 1 tensor pixels around it. Smaller tensors have no cells at all.
        self.min_tensor_side = 2 * self.contract.cell_offset + 1
        self._local = threading.local()  # each thread's reused pyramid tensor

    @classmethod
    def from_onnx(cls, path: str | Path, providers=("CPUExecutionProvider",), **kwargs) -> FaceDetector:
        return cls(OnnxRuntimeBackend(path, providers), source=str(path), **kwargs)

    @classmethod
    def from_engines(
        cls,
        engines_dir: str | Path | None = None,
        precision: str = "fp32",
        providers=("CPUExecutionProvider",),
        backend: str | None = None,
        **kwargs,
    ) -> FaceDetector:
        """Load the artifact that ``facestyle build`` wrote, checked against its manifest."""
        loaded = load_built(engines_dir, MODEL_NAME, precision, providers, backend)
        return cls(loaded.backend, source=str(loaded.artifact), **kwargs)

    def score_map(self, tensor: np.ndarray) -> np.ndarray:
        """Run the convolution stack on a (1, 3, NR, NC) pyramid tensor; returns the (rows, cols) scores."""
        c = self.contract
        return self.backend.infer({c.input_name: tensor})[c.output_name][0, 0]

    def detect(self, image: np.ndarray, upsample: int = 0, *, threshold: float | None = None) -> Detections:
        """Faces in one image: (H, W, 3) uint8 RGB, or (H, W) uint8 grey (used as R = G = B, like dlib).

        ``threshold`` overrides the contract's score threshold (dlib's ``adjust_threshold``; its Python
        API always uses 0). Returns :class:`Detections`, best first.
        """
        if isinstance(upsample, bool) or not isinstance(upsample, (int, np.integer)) or upsample < 0:
            raise BadInputError(f"upsample: expected an int >= 0 (times to double the image), got {upsample!r}")
        image = _as_rgb(image)
        check_upsample(image.shape[1], image.shape[0], int(upsample))
        rows, cols = image.shape[:2]
        scale = detection_scale(cols, rows, int(upsample), self.max_pixels)
        if scale != 2 ** int(upsample):  # over the budget: resized once to fit, boxes mapped back
            found = self._detect_fitted(resize_to_fit(image, scale), threshold)
            return Detections(scale_boxes(found.boxes, cols / found.size[0], rows / found.size[1]), found.scores)
        for _ in range(int(upsample)):
            image = pyramid_up(image)
        found = self._detect_fitted(image, threshold)
        boxes = rect_down(found.boxes, int(upsample)) if upsample else found.boxes
        return Detections(boxes.reshape(-1, 4), found.scores)

    def _detect_fitted(self, image: np.ndarray, threshold: float | None) -> _Found:
        """Faces in the image exactly as given (no resizing), boxes in its coordinates."""
        if not hasattr(self._local, "buffers"):
            self._local.buffers = {}
        if image.shape[0] * image.shape[1] > REUSED_PIXELS:
            self._local.buffers.clear()  # a server's many threads would each keep one: allocated per image
        reuse = self._local.buffers if image.shape[0] * image.shape[1] <= REUSED_PIXELS else None
        tensor, rects = build_pyramid_tensor(image, self.contract, buffers=reuse)
        nr, nc = tensor.shape[2:]
        size = (image.shape[1], image.shape[0])
        if len(rects) == 0 or min(nr, nc) < self.min_tensor_side:
            empty = Detections.empty()  # dlib returns nothing here, or fails its own asserts
            return _Found(empty.boxes, empty.scores, size)
        boxes, scores = decode_scores(self.score_map(tensor), rects, self.contract, threshold)
        keep = nms(boxes, self.contract.nms_iou, self.contract.nms_covered)
        return _Found(boxes[keep].reshape(-1, 4), scores[keep], size)


@dataclass(frozen=True)
class _Found:
    boxes: np.ndarray
    scores: np.ndarray
    size: tuple[int, int]  # (width, height) of the image the boxes are in


def detection_scale(width: int, height: int, upsample: int, max_pixels: int = MAX_DETECT_PIXELS) -> float:
    """How much the detector enlarges (or shrinks) a width x height image: ``2**upsample``, or less where that
    would pass ``max_pixels``. Upsampling counts against the same budget: it never makes the detector's image
    larger than ``max_pixels``."""
    wanted = 2.0 ** upsample
    if width * height * wanted * wanted <= max_pixels:
        return wanted
    return math.sqrt(max_pixels / (width * height))


def peak_bytes(width: int, height: int, upsample: int = 0, max_pixels: int = MAX_DETECT_PIXELS) -> int:
    """The stated bound on the memory that decoding and analysing a width x height image adds to a process
    with the models loaded: IMAGE_BYTES_PER_PIXEL per image pixel, DETECT_BYTES_PER_PIXEL per pixel the
    detector looks at (at most ``max_pixels``)."""
    scale = detection_scale(width, height, upsample, max_pixels)
    looked_at = min(max_pixels, round(width * height * scale * scale))
    return IMAGE_BYTES_PER_PIXEL * width * height + DETECT_BYTES_PER_PIXEL * looked_at


def resize_to_fit(image: np.ndarray, scale: float) -> np.ndarray:
    """The image resized by ``scale`` (Pillow's bilinear filter, which averages every source pixel when
    shrinking), each side at least 1 and the product within the budget ``scale`` was computed for."""
    from PIL import Image

    rows, cols = image.shape[:2]
    size = (max(1, math.floor(cols * scale)), max(1, math.floor(rows * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def scale_boxes(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Inclusive ``[l, t, r, b]`` boxes of a resized image in the original: pixel edges scale, then rounded."""
    edges = np.asarray(boxes, np.float64) + np.array([0.0, 0.0, 1.0, 1.0])
    scaled = edges * np.array([sx, sy, sx, sy])
    return lround(scaled - np.array([0.0, 0.0, 1.0, 1.0])).reshape(-1, 4)


def check_upsample(width: int, height: int, upsample: int) -> None:
    """Refuse an upsampling whose doubled image would pass the decoder's pixel limit (memory and time grow 4x
    per step: upsample 9 on a 250x250 photo asks for 16 billion pixels)."""
    from ..images import DEFAULT_MAX_PIXELS

    pixels = width * height * 4 ** upsample
    if pixels > DEFAULT_MAX_PIXELS:
        most = 0
        while width * height * 4 ** (most + 1) <= DEFAULT_MAX_PIXELS:
            most += 1
        raise BadInputError(f"upsample {upsample}: the {width}x{height} image doubled {upsample} times would be "
                            f"{pixels:,} pixels, over the limit of {DEFAULT_MAX_PIXELS:,}; at most upsample {most} "
                            "for it")


def _inside(rects: np.ndarray, nr: int, nc: int) -> bool:
    """Every level lies inside the (nr, nc) tensor."""
    return bool((rects[:, :2] >= 0).all() and (rects[:, 2] < nc).all() and (rects[:, 3] < nr).all())
