"""The working resolution: strokes sized to the picture, not to its pixel count.

A style network paints strokes of a fixed size in pixels, so the same photo at 4000 px comes back with strokes a
quarter as large, relative to the picture, as at 1000 px. The :class:`~facestyle.style.stylizer.Stylizer` therefore
stylises at a working size (longer side ``WORKING_SIDE / stroke_scale``, never upscaling a photo that is already
smaller, so 384 and 512 px photos cost what they did) and brings the result back to full size with
:func:`guided_upsample`: the stylised colours and strokes from the working size, the photo's own edges at full size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import BadInputError

WORKING_SIDE = 1000  # the longer side a photo is stylised at by default (larger photos are brought down to it)
STROKE_SCALES = (0.25, 4.0)  # --stroke-scale bounds: 4x smaller to 4x larger strokes than the default
# Under about 256 px the network's 1/8-resolution map is a few cells wide and instance normalisation's statistics
# are of a handful of samples; stylised there, a 40x30 photo's mean colour is 10-17 levels off what the same photo
# gets stylised larger (measured on the content test photos): tiny photos are stylised at this size, then shrunk.
MIN_WORKING_SIDE = 256
MIN_WORKING_SHORT_SIDE = 64  # the network's reflection pads need each side at least this long
GUIDE_RADIUS = 1  # the guided filter's window at the working size: 3x3, so the strokes themselves are kept
GUIDE_EPS = 20.0**2  # regularisation in 0..255 units: edges weaker than ~20 levels are not carried over
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def check_stroke_scale(stroke_scale: float) -> float:
    low, high = STROKE_SCALES
    if not low <= stroke_scale <= high:  # also refuses NaN
        raise BadInputError(f"stroke scale {stroke_scale}: expected {low} to {high} (1 = the default stroke size, "
                            "2 = strokes twice as large relative to the picture)")
    return float(stroke_scale)


def working_size(height: int, width: int, stroke_scale: float = 1.0, working_side: int = WORKING_SIDE) -> tuple[int, int]:
    """(height, width) to stylise an image of this size at: its longer side ``min(side, working_side) / stroke_scale``,
    and at least ``MIN_WORKING_SIDE`` (and each side ``MIN_WORKING_SHORT_SIDE`` where that stays within
    ``working_side``), aspect kept."""
    longer, shorter = max(height, width), min(height, width)
    target = min(longer, working_side) / stroke_scale
    target = max(target, MIN_WORKING_SIDE, min(working_side, MIN_WORKING_SHORT_SIDE * longer / shorter))
    if abs(target - longer) < 0.5:
        return height, width
    scale = target / longer
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: np.ndarray, height: int, width: int, resample=Image.BICUBIC) -> np.ndarray:
    """An (H, W, C) float32 or uint8 image resized per channel (float precision kept)."""
    if image.shape[:2] == (height, width):
        return image
    planes = [Image.fromarray(np.ascontiguousarray(image[..., c])).resize((width, height), resample)
              for c in range(image.shape[2])]
    return np.stack([np.asarray(p) for p in planes], -1)


def shrink(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Downscaling without aliasing (Lanczos), for tiny photos brought back from the minimum working size."""
    return resize(image, height, width, Image.LANCZOS)


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1) x (2r+1) window around each pixel, windows clipped at the borders (summed-area table)."""
    h, w = x.shape[:2]
    table = np.zeros((h + 1, w + 1) + x.shape[2:], np.float64)
    table[1:, 1:] = x.cumsum(0).cumsum(1)
    rows, cols = np.arange(h), np.arange(w)
    top, bottom = np.maximum(rows - radius, 0), np.minimum(rows + radius + 1, h)
    left, right = np.maximum(cols - radius, 0), np.minimum(cols + radius + 1, w)
    sums = table[bottom][:, right] - table[top][:, right] - table[bottom][:, left] + table[top][:, left]
    counts = np.outer(bottom - top, right - left).reshape((h, w) + (1,) * (x.ndim - 2))
    return (sums / counts).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb, np.float32) @ LUMA)[..., None]


def guided_upsample(stylised: np.ndarray, small_photo: np.ndarray, photo: np.ndarray,
                    radius: int = GUIDE_RADIUS, eps: float = GUIDE_EPS) -> np.ndarray:
    """The working-size ``stylised`` result (h, w, 3 float32, 0..255) at ``photo``'s full size (H, W, 3 uint8).

    Joint upsampling in the manner of the guided filter (He, Sun and Tang): per 3x3 window of the working size,
    the stylised colours are fitted as ``a * Y + b`` of the photo's luminance Y there, so ``a`` is how strongly the
    painting follows the photo's light and dark at that place. The result is the stylised image resized (Lanczos)
    plus ``a`` times the full-size detail the working size lost (Y at full size minus Y brought down and back up):
    the strokes stay as sharp as resizing leaves them, and where the painting follows the photo its edges come
    back at full resolution. Fitting the whole result as ``a * Y + b`` instead (the plain fast guided filter)
    averages the strokes over two windows and comes out softer than resizing alone.
    """
    guide = luminance(small_photo)
    mean_i, mean_p = box_mean(guide, radius), box_mean(stylised, radius)
    covariance = box_mean(guide * stylised, radius) - mean_i * mean_p
    variance = box_mean(guide * guide, radius) - mean_i * mean_i
    gain = np.clip(box_mean(covariance / (variance + np.float32(eps)), radius), -2.0, 2.0)
    height, width = photo.shape[:2]
    detail = luminance(photo) - resize(guide, height, width, Image.LANCZOS)
    return resize(stylised, height, width, Image.LANCZOS) + resize(gain, height, width, Image.BILINEAR) * detail


def lanczos_upsample(stylised: np.ndarray, small_photo: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """The working-size result resized to full size by itself (the photo's full-size detail is not used)."""
    return resize(stylised, photo.shape[0], photo.shape[1], Image.LANCZOS)


UPSAMPLERS = {"guided": guided_upsample, "lanczos": lanczos_upsample}
