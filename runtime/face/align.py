"""Face chip alignment that reproduces ``dlib.get_face_chip`` bit for bit, in numpy.

The recognition network was trained on chips cut exactly the way dlib cuts them, so this module
follows dlib's own arithmetic (``dlib/image_transforms/interpolation.h``, ``image_pyramid.h``,
``geometry/point_transforms.h``, ``matrix/matrix_la.h``) operation by operation:

1. ``face_chip_details``: the 5 landmarks are fitted to dlib's mean-face template by a least-squares
   similarity transform (Umeyama, with dlib's own Golub-Reinsch SVD); its rotation becomes the chip
   angle and its scale the size of a rectangle centred on the mapped chip centre.
2. ``extract_face_chip``: when that rectangle is much larger than the chip, the image (cropped to the
   rotated rectangle grown by a margin) is shrunk with dlib's integer ``pyramid_down<2>`` filter
   (5-tap [1 4 6 4 1], truncating /256) while the rectangle, halved once more, would still hold
   more pixels than the chip.
   The chip is then sampled bilinearly from that level through the affine map that sends the chip
   corners (0,0), (cols-1,0), (0,rows-1) onto the rotated rectangle's corners, truncated to uint8;
   a sample whose right or lower neighbour falls outside the level is black.

Only numpy and the standard library are used, so the runtime keeps working without dlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import BadImageError, BadInputError
from .dlib_linalg import pinv_corners, similarity_transform

__all__ = ["ChipDetails", "face_chip_details", "extract_face_chip", "extract_face_chips", "pyramid_down"]

# dlib's mean face for the 5-point shape predictor, in part order (get_face_chip_details).
_TEMPLATE_5 = (
    (0.8595674595992, 0.2134981538014),  # 0: outer corner of the image-right eye
    (0.6460604764104, 0.2289674387677),  # 1: inner corner of the image-right eye
    (0.1205750620789, 0.2137274526848),  # 2: outer corner of the image-left eye
    (0.3340850613712, 0.2290642403242),  # 3: inner corner of the image-left eye
    (0.4901123135679, 0.6277975316475),  # 4: below the nose
)



# --------------------------------------------------------------------------------------------
# Public types


@dataclass(frozen=True, eq=False)
class ChipDetails:
    """dlib's ``chip_details`` for a face: where the chip lies in the image and how it is rotated.

    ``rect`` is dlib's ``drectangle`` (left, top, right, bottom), inclusive, so its width is
    ``right - left + 1``; it is centred on the chip centre mapped into the image and is
    ``cols * scale`` by ``rows * scale`` pixels before rotating it by ``angle`` (radians) about its
    centre. ``transform`` is the least-squares similarity transform from chip coordinates to image
    coordinates as a 2x3 matrix ``[M | b]`` (``image = M @ chip + b``).
    """

    rect: tuple[float, float, float, float]
    angle: float
    rows: int
    cols: int
    transform: np.ndarray

    @property
    def scale(self) -> float:
        """Image pixels per chip pixel."""
        return math.sqrt(self.transform[0, 0] * self.transform[0, 0] + self.transform[1, 0] * self.transform[1, 0])

    @property
    def center(self) -> tuple[float, float]:
        l, t, r, b = self.rect
        return ((l + r) / 2.0, (t + b) / 2.0)

    @property
    def width(self) -> float:
        return _width(self.rect)

    @property
    def height(self) -> float:
        return _height(self.rect)

    @property
    def pyramid_levels(self) -> int:
        """How many ``pyramid_down<2>`` levels dlib builds to cut this chip alone (0: sampled from the image).

        dlib halves the source while the rectangle, halved once more, would still hold more pixels
        than the chip (so a face over about twice the chip width goes through the pyramid).
        """
        return _pyramid_depth(self.rect, self.rows * self.cols)

    def corners(self) -> np.ndarray:
        """The rotated rectangle's corners in the image: top-left, top-right, bottom-right, bottom-left (4, 2)."""
        l, t, r, b = self.rect
        cen = _center(self.rect)
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        return np.array([_rotate(cen, p, ca, sa) for p in ((l, t), (r, t), (r, b), (l, b))], np.float64)


# --------------------------------------------------------------------------------------------
# Validation


def _check_size_padding(size, padding) -> tuple[int, float]:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) < 1:
        raise BadInputError(f"chip size must be a positive integer number of pixels, got {size!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, float, np.integer, np.floating)):
        raise BadInputError(f"padding must be a number >= 0 (a fraction of the face width), got {padding!r}")
    if not math.isfinite(float(padding)) or float(padding) < 0:
        raise BadInputError(f"padding must be a finite number >= 0 (a fraction of the face width), got {padding!r}")
    return int(size), float(padding)


def _as_c_float(padding: float) -> float:
    """dlib.get_face_chip(s) take padding as a C float (dlib.get_face_chip_details as a double)."""
    return float(np.float32(padding))


def _check_landmarks(landmarks, batched: bool) -> np.ndarray:
    try:
        points = np.asarray(landmarks)
    except Exception as exc:  # ragged lists and the like
        raise BadInputError(f"landmarks must be an array of (x, y) points, could not read them: {exc}") from None
    want = "(N, 5, 2)" if batched else "(5, 2)"
    ok_shape = points.ndim == (3 if batched else 2) and points.shape[-2:] == (5, 2)
    if not ok_shape:
        raise BadInputError(
            f"landmarks must have shape {want}: the 5 (x, y) points of dlib's 5-point shape predictor "
            f"in part order, got shape {points.shape}"
        )
    numeric = np.issubdtype(points.dtype, np.integer) or np.issubdtype(points.dtype, np.floating)
    if points.dtype == bool or not numeric:
        raise BadInputError(f"landmarks must be integer or float pixel coordinates, got dtype {points.dtype}")
    points = points.astype(np.float64)
    if not np.isfinite(points).all():
        raise BadInputError("landmarks must be finite pixel coordinates, got NaN or infinity")
    return points


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise BadImageError(
            f"image must be a numpy array of shape (H, W, 3), dtype uint8 (RGB), got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise BadImageError(f"image must have dtype uint8 (RGB pixels 0-255), got {image.dtype}")
    if not (image.ndim == 3 and image.shape[2] == 3) and image.ndim != 2:
        raise BadImageError(
            f"image must have shape (H, W, 3) (RGB) or (H, W) (grey), got shape {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise BadImageError(f"image is empty: shape {image.shape}, expected at least 1x1 pixels")
    return image


# --------------------------------------------------------------------------------------------
# Geometry, as dlib's drectangle / vector / point_transforms do it (all in IEEE doubles).


def _is_empty(rect) -> bool:
    l, t, r, b = rect
    return t > b or l > r


def _width(rect) -> float:
    return 0.0 if _is_empty(rect) else rect[2] - rect[0] + 1


def _height(rect) -> float:
    return 0.0 if _is_empty(rect) else rect[3] - rect[1] + 1


def _area(rect) -> float:
    return _width(rect) * _height(rect)


def _center(rect) -> tuple[float, float]:
    return ((rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0)


def _rotate(cen, p, ca, sa) -> tuple[float, float]:
    """rotate_point(center, p, angle): rot(p - center) + center."""
    dx, dy = p[0] - cen[0], p[1] - cen[1]
    return (ca * dx - sa * dy + cen[0], sa * dx + ca * dy + cen[1])


def _point_down(p) -> tuple[float, float]:
    """pyramid_down<2>::point_down: p/2 - (1.25, 0.75)."""
    return (p[0] / 2.0 - 1.25, p[1] / 2.0 - 0.75)


def _rect_down(rect):
    """pyramid_down<2>::rect_down: drectangle(point_down(tl), point_down(br)), a bounding box."""
    l, t = _point_down((rect[0], rect[1]))
    r, b = _point_down((rect[2], rect[3]))
    return (min(l, r), min(t, b), max(l, r), max(t, b))


def _pyramid_depth(rect, size: int) -> int:
    """extract_image_chips' depth: how many rect_down steps keep the area above the chip size."""
    depth = 0
    rect = _rect_down(rect)
    while _area(rect) > float(size):
        rect = _rect_down(rect)
        depth += 1
    return depth


def _lround(x: float) -> int:
    """std::lround: half away from zero."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def _chip_to_level_affine(rect, angle, rows, cols):
    """find_affine_transform from the chip's tl, tr, bl corners to the rotated rect's corners."""
    cen = _center(rect)
    ca, sa = math.cos(angle), math.sin(angle)
    l, t, r, b = rect
    to = (_rotate(cen, (l, t), ca, sa), _rotate(cen, (r, t), ca, sa), _rotate(cen, (l, b), ca, sa))
    pinv = pinv_corners(rows, cols)
    # m = Q * pinv(P), Q = 2x3 of the target points
    out = [[0.0] * 3 for _ in range(2)]
    for i in range(2):
        for j in range(3):
            acc = to[0][i] * pinv[0][j]
            acc += to[1][i] * pinv[1][j]
            acc += to[2][i] * pinv[2][j]
            out[i][j] = acc
    return out


# --------------------------------------------------------------------------------------------
# Public functions


def face_chip_details(landmarks, size: int = 150, padding: float = 0.25) -> ChipDetails:
    """dlib's ``get_face_chip_details`` for the 5 points of its 5-point shape predictor.

    ``landmarks`` is (5, 2) (x, y) in part order, what ``shape.part(i)`` gives (dlib's points are
    integers; float points are used as given). ``padding`` is the margin around dlib's template
    face as a fraction of its width. Bit-identical to ``dlib.get_face_chip_details(shape, size,
    padding)``, which takes padding as a double; ``extract_face_chip`` rounds padding to a C float
    first, as ``dlib.get_face_chip`` does (no difference for 0.25).
    """
    size, padding = _check_size_padding(size, padding)
    pts = _check_landmarks(landmarks, batched=False)
    return _details(pts, size, padding)


def _details(pts: np.ndarray, size: int, padding: float) -> ChipDetails:
    denom = 1.0 / (2 * padding + 1)  # (padding + p) / (2*padding + 1): dlib multiplies by the reciprocal
    fsize = float(size)
    src = [((px + padding) * denom * fsize, (py + padding) * denom * fsize) for px, py in _TEMPLATE_5]
    dst = [(float(x), float(y)) for x, y in pts]
    m, b = similarity_transform(src, dst)
    if not all(math.isfinite(v) for v in (*m[0], *m[1], *b)):
        raise BadInputError(
            f"landmarks are too large to fit (overflow), expected pixel coordinates, got {pts.tolist()}"
        )
    if not (m[0][0] != 0 or m[1][0] != 0):
        raise BadInputError(
            "landmarks are degenerate (all 5 points coincide), expected the 5 distinct points of a face"
        )
    # chip_details(chip_points, img_points, dims)
    angle = math.atan2(m[1][0], m[0][0])
    scale = math.sqrt(m[0][0] * m[0][0] + m[1][0] * m[1][0])
    half = (size / 2.0, size / 2.0)  # point(cols, rows) / 2.0
    cx = m[0][0] * half[0] + m[0][1] * half[1] + b[0]
    cy = m[1][0] * half[0] + m[1][1] * half[1] + b[1]
    w = size * scale - 1  # centered_drect(p, width, height): width--, height--
    h = size * scale - 1
    rect = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    transform = np.array([[m[0][0], m[0][1], b[0]], [m[1][0], m[1][1], b[1]]], np.float64)
    transform.setflags(write=False)
    return ChipDetails(rect=rect, angle=angle, rows=size, cols=size, transform=transform)


def _planes(image: np.ndarray) -> np.ndarray:
    """(H, W, C) or (H, W) uint8 -> contiguous (C, H, W): numpy filters and gathers fastest per plane."""
    if image.ndim == 2:
        return np.ascontiguousarray(image[None])
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def _pyramid_down_planes(planes: np.ndarray) -> np.ndarray:
    """pyramid_down<2> on (C, H, W) uint8 planes; see ``pyramid_down``."""
    chans, nr, nc = planes.shape
    if nr <= 8 or nc <= 8:
        return np.zeros((chans, 0, 0), np.uint8)
    out_r, out_c = (nr - 3) // 2, (nc - 3) // 2
    # 16 bits hold every partial sum: a row sum is at most 16*255 and the 5x5 sum 256*255, as in
    # dlib's rgb path (uint16 channels); the [1 4 6 4 1] taps of output c are at 2c .. 2c+4.
    src = planes.astype(np.uint16)
    even, odd = src[..., 0::2], src[..., 1::2]
    row = even[..., :out_c] + even[..., 2 : out_c + 2]
    mid = odd[..., :out_c] + odd[..., 1 : out_c + 1]
    mid <<= 2
    row += mid
    row += even[..., 1 : out_c + 1] * np.uint16(6)
    even, odd = row[:, 0::2], row[:, 1::2]
    total = even[:, :out_r] + even[:, 2 : out_r + 2]
    mid = odd[:, :out_r] + odd[:, 1 : out_r + 1]
    mid <<= 2
    total += mid
    total += even[:, 1 : out_r + 1] * np.uint16(6)
    total >>= 8  # temp/256 on non-negative integers: truncation
    return total.astype(np.uint8)


def pyramid_down(image: np.ndarray) -> np.ndarray:
    """One level of dlib's ``pyramid_down<2>`` on a uint8 (H, W, C) or (H, W) image.

    Separable [1 4 6 4 1] filter in integers (row sums kept unnormalised, the 5x5 sum divided by
    256 with truncation), every other row/column kept: output ((H-3)//2, (W-3)//2), pixel (r, c)
    centred on input (2r+2, 2c+2). Images of 8 pixels or fewer on a side give an empty result.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise BadImageError(
            "pyramid_down needs a uint8 numpy array of shape (H, W) or (H, W, C), got "
            + (f"dtype {image.dtype}, shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__)
        )
    down = _pyramid_down_planes(_planes(image))
    return down[0] if image.ndim == 2 else np.ascontiguousarray(down.transpose(1, 2, 0))


def _sample(planes: np.ndarray, affine, rows: int, cols: int, grey: bool) -> np.ndarray:
    """transform_image with interpolate_bilinear and a black background, vectorised.

    Per output pixel (c, r): p = M @ (c, r) + b; left/top = floor(p); black unless the 2x2
    neighbourhood lies inside the level; else per channel, in doubles and in dlib's order,
    (1-tb)*((1-lr)*tl + lr*tr) + tb*((1-lr)*bl + lr*br), truncated to uint8.
    """
    chans, nr, nc = planes.shape
    out = np.zeros((rows, cols) if grey else (rows, cols, chans), np.uint8)
    if nr < 2 or nc < 2:
        return out
    (m00, m01, b0), (m10, m11, b1) = affine
    c = np.arange(cols, dtype=np.float64)[None, :]
    r = np.arange(rows, dtype=np.float64)[:, None]
    x = (m00 * c + m01 * r) + b0
    y = (m10 * c + m11 * r) + b1
    left = np.floor(x)
    top = np.floor(y)
    ok = (left >= 0) & (top >= 0) & (left + 1 < nc) & (top + 1 < nr)
    if not ok.any():
        return out
    lr = x - left
    tb = y - top
    one_lr = 1 - lr
    one_tb = 1 - tb
    idx = np.clip(top, 0, nr - 2).astype(np.intp) * nc + np.clip(left, 0, nc - 2).astype(np.intp)
    for ch, plane in enumerate(planes.reshape(chans, nr * nc)):
        tl = plane[idx]
        tr = plane[idx + 1]
        bl = plane[idx + nc]
        br = plane[idx + (nc + 1)]
        value = one_tb * (one_lr * tl + lr * tr) + tb * (one_lr * bl + lr * br)
        # assigning floats to uint8 truncates, like static_cast<unsigned char>
        if grey:
            out[...] = value
        else:
            out[..., ch] = value
    if not ok.all():
        out[~ok] = 0
    return out


def _basic_extract(image: np.ndarray, rect, rows: int, cols: int) -> np.ndarray:
    """basic_extract_image_chip: a plain copy of the (rounded) rect, zeros outside the image."""
    l, t, r, b = (_lround(v) for v in rect)
    out = np.zeros((rows, cols) + image.shape[2:], np.uint8)
    nr, nc = image.shape[:2]
    al, at, ar, ab = max(l, 0), max(t, 0), min(r, nc - 1), min(b, nr - 1)
    if al <= ar and at <= ab:
        out[at - t : ab - t + 1, al - l : ar - l + 1] = image[at : ab + 1, al : ar + 1]
    return out


def _is_plain_copy(d: ChipDetails) -> bool:
    return d.angle == 0 and d.rows == _height(d.rect) and d.cols == _width(d.rect)


def _extract_chips(image: np.ndarray, details: list[ChipDetails]) -> list[np.ndarray]:
    """dlib's extract_image_chips with interpolate_bilinear: one shared crop and pyramid."""
    nr, nc = image.shape[:2]
    max_depth = 0
    box = None  # the integer bounding box (l, t, r, b); None is dlib's empty rectangle
    for d in details:
        depth = _pyramid_depth(d.rect, d.rows * d.cols)
        grow = 2.0
        for _ in range(depth):  # a 2 pixel border per level against the filter's edge effects
            grow = grow * 2 + 2
        corners = d.corners()
        rl, rt = corners.min(axis=0)
        rr, rb = corners.max(axis=0)
        grown = (float(rl) - grow, float(rt) - grow, float(rr) + grow, float(rb) + grow)
        clipped = (max(grown[0], 0.0), max(grown[1], 0.0), min(grown[2], float(nc - 1)), min(grown[3], float(nr - 1)))
        irect = tuple(_lround(v) for v in clipped)
        if not (irect[1] > irect[3] or irect[0] > irect[2]):
            if box is None:
                box = irect
            else:
                box = (min(box[0], irect[0]), min(box[1], irect[1]), max(box[2], irect[2]), max(box[3], irect[3]))
        max_depth = max(depth, max_depth)

    if box is None:
        box = (0, 0, -1, -1)
    crop = _planes(image[box[1] : box[3] + 1, box[0] : box[2] + 1])
    levels: list[np.ndarray] = []
    for i in range(max_depth):
        levels.append(_pyramid_down_planes(crop if i == 0 else levels[-1]))
    grey = image.ndim == 2

    chips = []
    for d in details:
        if _is_plain_copy(d):
            chips.append(_basic_extract(image, d.rect, d.rows, d.cols))
            continue
        size = float(d.rows * d.cols)
        level = -1
        rect = (d.rect[0] - box[0], d.rect[1] - box[1], d.rect[2] - box[0], d.rect[3] - box[1])
        while _area(_rect_down(rect)) > size:
            level += 1
            rect = _rect_down(rect)
        affine = _chip_to_level_affine(rect, d.angle, d.rows, d.cols)
        source = crop if level == -1 or not levels else levels[min(level, len(levels) - 1)]
        chips.append(_sample(source, affine, d.rows, d.cols, grey))
    return chips


def extract_face_chip(image: np.ndarray, landmarks, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The aligned face chip, exactly as ``dlib.get_face_chip(image, shape, size, padding)`` makes it.

    ``image`` is (H, W, 3) uint8 RGB (or (H, W) uint8 grey); ``landmarks`` the (5, 2) points of
    dlib's 5-point shape predictor. Returns (size, size, 3) uint8 ((size, size) for grey input).
    """
    image = _check_image(image)
    size, padding = _check_size_padding(size, padding)
    pts = _check_landmarks(landmarks, batched=False)
    details = _details(pts, size, _as_c_float(padding))
    if _is_plain_copy(details):
        return _basic_extract(image, details.rect, details.rows, details.cols)
    return _extract_chips(image, [details])[0]


def extract_face_chips(
    image: np.ndarray, landmarks, size: int = 150, padding: float = 0.25, shared_pyramid: bool = False
) -> np.ndarray:
    """Chips for N faces of one image: (N, 5, 2) landmarks -> (N, size, size, 3) uint8.

    By default chip ``i`` equals ``extract_face_chip(image, landmarks[i])``, i.e. what
    ``dlib.get_face_chip`` gives for each face alone (the chips the embedding was validated on).
    With ``shared_pyramid=True`` all faces are cut from one crop and one image pyramid, which is
    what ``dlib.get_face_chips`` does; a face on a pyramid level then can differ from its
    single-face chip by a few grey levels, because the shared crop starts at another pixel.
    """
    image = _check_image(image)
    size, padding = _check_size_padding(size, padding)
    pts = _check_landmarks(landmarks, batched=True)
    out = np.zeros((len(pts), size, size) + image.shape[2:], np.uint8)
    if len(pts) == 0:
        return out
    padding = _as_c_float(padding)
    details = [_details(p, size, padding) for p in pts]
    if shared_pyramid:
        chips = _extract_chips(image, details)
    else:
        chips = [
            _basic_extract(image, d.rect, d.rows, d.cols) if _is_plain_copy(d) else _extract_chips(image, [d])[0]
            for d in details
        ]
    for i, chip in enumerate(chips):
        out[i] = chip
    return out
