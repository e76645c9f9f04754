"""What of the photo a stylised image keeps: its colours (``preserve_colour``) and its faces (``keep_faces``).

Colour: luminance-only transfer (Gatys, Bethge, Hertzmann and Shechtman 2016, "Preserving color in neural artistic
style transfer"): the stylised image's luminance Y, its mean and spread matched to the photo's, with the photo's
chroma (Cb, Cr of JPEG's full-range YCbCr). Faces: the stylised image blended towards the photo inside a feathered
ellipse around each face found, so that people stay recognisable while the rest is fully painted.
"""

from __future__ import annotations

import numpy as np

FACE_STRENGTH = 0.35  # the style's share inside a face (1 = fully painted, 0 = the photo)
# A detector box runs from the brows to the chin: the ellipse is widened and raised to take in forehead and cheeks.
FACE_WIDEN, FACE_HEIGHTEN, FACE_RAISE = 1.25, 1.45, 0.12
FEATHER_INNER, FEATHER_OUTER = 0.75, 1.2  # full weight inside 0.75 of the ellipse, none beyond 1.2 of it

_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_FROM_YCBCR = np.linalg.inv(_TO_YCBCR).astype(np.float32)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB 0..255 -> Y, Cb, Cr (Cb and Cr centred on 0, not JPEG's 128)."""
    return np.asarray(rgb, np.float32) @ _TO_YCBCR.T


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    return ycc @ _FROM_YCBCR.T


def preserve_colour(stylised: np.ndarray, photo: np.ndarray, match_luminance: bool = True) -> np.ndarray:
    """The stylised image's luminance with the photo's chroma, float32 RGB 0..255. ``match_luminance``: the stylised
    luminance's mean and standard deviation are first matched to the photo's (the painting's darker or lighter
    palette would otherwise move the whole photo's brightness)."""
    styled, original = rgb_to_ycbcr(stylised), rgb_to_ycbcr(photo)
    y = styled[..., 0]
    if match_luminance:
        y = (y - y.mean()) * (original[..., 0].std() / (y.std() + 1e-3)) + original[..., 0].mean()
    return ycbcr_to_rgb(np.concatenate([y[..., None], original[..., 1:]], -1))


def face_mask(height: int, width: int, boxes: np.ndarray) -> np.ndarray:
    """(H, W, 1) float32 weights: 1 in the middle of each face, falling smoothly to 0 outside a feathered ellipse
    around its box ``[left, top, right, bottom]``; the largest weight where faces overlap."""
    mask = np.zeros((height, width), np.float32)
    for left, top, right, bottom in np.asarray(boxes, np.float64).reshape(-1, 4):
        half_w, half_h = (right - left + 1) / 2 * FACE_WIDEN, (bottom - top + 1) / 2 * FACE_HEIGHTEN
        cx, cy = (left + right) / 2, (top + bottom) / 2 - FACE_RAISE * (bottom - top + 1)
        reach_x, reach_y = half_w * FEATHER_OUTER, half_h * FEATHER_OUTER
        x0, x1 = max(0, int(cx - reach_x)), min(width, int(np.ceil(cx + reach_x)) + 1)
        y0, y1 = max(0, int(cy - reach_y)), min(height, int(np.ceil(cy + reach_y)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = (np.arange(x0, x1) - cx) / half_w
        dy = (np.arange(y0, y1) - cy) / half_h
        distance = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
        t = np.clip((FEATHER_OUTER - distance) / (FEATHER_OUTER - FEATHER_INNER), 0, 1)
        weight = (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep: no visible rim
        np.maximum(mask[y0:y1, x0:x1], weight, out=mask[y0:y1, x0:x1])
    return mask[..., None]


def keep_faces(stylised: np.ndarray, photo: np.ndarray, mask: np.ndarray, face_strength: float = FACE_STRENGTH) -> np.ndarray:
    """Inside the mask, only ``face_strength`` of the style; outside it, all of it."""
    photo_share = mask * np.float32(1.0 - face_strength)
    return stylised * (1 - photo_share) + np.asarray(photo, np.float32) * photo_share
