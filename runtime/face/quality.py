"""One quality score per found face, in [0, 1]: is this face good enough to be named, or enrolled, from?

Four parts, each mapped to [0, 1] (1: no doubt on that count):

- ``size``: the detector box's width in pixels; small faces carry little detail whatever the chip size.
- ``sharpness``: the variance of the Laplacian of the grey aligned chip (blur, and small faces blown up to
  the chip size, both leave little high-frequency energy), on a log scale.
- ``pose``: how far the face is turned away (yaw), from where the point below the nose lies between the
  two eyes (the aligned chip has removed roll already).
- ``detection``: the detector's own confidence.

The score is the weakest part: a face is as good as its worst count, and that part is what a report names.
The parts' ramps and the thresholds were chosen on LFW View 1 DevTrain pairs with one photo degraded
(``benchmarks/face_quality.py``; docs/faces.md gives the figures). numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_MIN_QUALITY", "PARTS", "POOR_ENROLMENT", "QualityParts", "face_quality", "quality_of", "quality_parts"]

# Below 0.4, LFW View 1 DevTrain pairs with one photo degraded erred over twice as often as undegraded ones
# (4.5% and 11.5% in the bins 0.2-0.4 and 0-0.2, against 2.0%): such a face is not named from (it may be tracked).
DEFAULT_MIN_QUALITY = 0.4
# An enrolled photo is compared with every face seen later: one step stricter (refuses 1 in 100 undegraded LFW photos).
POOR_ENROLMENT = 0.5

PARTS = ("size", "sharpness", "pose", "detection")
# (value scoring 0, value scoring 1) of each part's measure; linear in between, clipped outside.
SIZE_PX = (20.0, 50.0)  # box width in pixels
LOG_SHARPNESS = (float(np.log(2.0)), float(np.log(12.0)))  # log variance of the Laplacian of the grey chip
YAW_OFFSET = (0.55, 0.25)  # |nose offset| from the eyes' midpoint, as a fraction of the eye distance
DETECTION_SCORE = (0.0, 0.5)  # detector confidence


@dataclass(frozen=True)
class QualityParts:
    """The parts of one face's quality (each in [0, 1]), the measures they came from, and the score."""

    size: float
    sharpness: float
    pose: float
    detection: float
    width_px: float
    laplacian_var: float
    yaw_offset: float
    score: float

    def weakest(self) -> str:
        """The part that pulls the score down most."""
        return min(PARTS, key=lambda part: getattr(self, part))

    def reasons(self, below: float = 0.5) -> list[str]:
        """Plain words for the parts under ``below``, worst first (e.g. "blurred", "face 38 px wide")."""
        words = {"size": f"face {self.width_px:.0f} px wide", "sharpness": "blurred", "pose": "turned away",
                 "detection": "faint detection"}
        weak = sorted((getattr(self, part), part) for part in PARTS if getattr(self, part) < below)
        return [words[part] for _, part in weak] or [f"{self.weakest()} lowest"]

    def to_json(self) -> dict:
        return {"score": round(self.score, 4), **{part: round(getattr(self, part), 4) for part in PARTS},
                "width_px": round(self.width_px, 1), "laplacian_var": round(self.laplacian_var, 2),
                "yaw_offset": round(self.yaw_offset, 4)}


def _ramp(values: np.ndarray, zero_at: float, one_at: float) -> np.ndarray:
    return np.clip((np.asarray(values, np.float64) - zero_at) / (one_at - zero_at), 0.0, 1.0)


def box_widths(boxes: np.ndarray) -> np.ndarray:
    """Width in pixels of inclusive [left, top, right, bottom] boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return boxes[:, 2] - boxes[:, 0] + 1


def laplacian_variance(chips: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of each chip's grey levels (N, H, W, 3) -> (N,)."""
    chips = np.asarray(chips, np.float64)
    if len(chips) == 0:
        return np.zeros(0)
    grey = chips[..., :3] @ np.array([0.299, 0.587, 0.114]) if chips.ndim == 4 else chips
    lap = (grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:] - 4 * grey[:, 1:-1, 1:-1])
    return lap.reshape(len(lap), -1).var(axis=1)


def yaw_offsets(landmarks: np.ndarray) -> np.ndarray:
    """Signed offset of the point below the nose from the eyes' midpoint, along the line between the eyes,
    as a fraction of the eye distance: about 0 for a frontal face, towards +-0.5 as it turns to a profile.
    dlib's 5 points: 0-1 the image-right eye (outer, inner corner), 2-3 the image-left eye, 4 below the nose."""
    pts = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    right, left = pts[:, 0:2].mean(axis=1), pts[:, 2:4].mean(axis=1)
    axis = right - left
    span = np.maximum(np.linalg.norm(axis, axis=1), 1e-6)
    along = ((pts[:, 4] - (right + left) / 2) * axis).sum(axis=1) / span
    return along / span


def _combine(parts: np.ndarray) -> np.ndarray:
    """(N, len(PARTS)) parts -> (N,) score: the weakest part (a face is as good as its worst count)."""
    return parts.min(axis=1)


def _measures(aligned) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (box_widths(aligned.boxes), laplacian_variance(aligned.chips), yaw_offsets(aligned.landmarks),
            np.asarray(aligned.scores, np.float64).reshape(-1))


def _parts(widths, variances, yaws, scores) -> np.ndarray:
    return np.stack([_ramp(widths, *SIZE_PX), _ramp(np.log(np.maximum(variances, 1e-9)), *LOG_SHARPNESS),
                     _ramp(np.abs(yaws), *YAW_OFFSET), _ramp(scores, *DETECTION_SCORE)], axis=1).reshape(-1, len(PARTS))


def quality_of(aligned) -> np.ndarray:
    """One quality in [0, 1] per face of an :class:`~facestyle.face.analyzer.Aligned` (boxes, scores, 5-point
    landmarks and aligned chips), in its order; float64 (N,)."""
    if len(aligned) == 0:
        return np.zeros(0)
    return _combine(_parts(*_measures(aligned)))


def quality_parts(aligned) -> list[QualityParts]:
    """The parts of every face's quality, for reports (``quality_of`` gives the same scores)."""
    if len(aligned) == 0:
        return []
    measures = _measures(aligned)
    parts = _parts(*measures)
    scores = _combine(parts)
    return [QualityParts(*(float(v) for v in parts[i]), float(measures[0][i]), float(measures[1][i]),
                         float(measures[2][i]), float(scores[i])) for i in range(len(scores))]


def face_quality(face) -> QualityParts | None:
    """The quality parts of one found :class:`~facestyle.face.analyzer.Face` (None when it carries no chip)."""
    from .analyzer import Aligned

    if face.chip is None:
        return None
    one = Aligned(np.asarray(face.box)[None], np.array([face.score]), np.asarray(face.landmarks)[None], face.chip[None])
    return quality_parts(one)[0]
