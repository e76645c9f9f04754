"""Face tracks across frames: ByteTrack's two-stage association over a constant-velocity Kalman filter.

>>> tracker = Tracker()
>>> for boxes, scores in detections_per_frame:        # boxes (N, 4) [left, top, right, bottom]
...     update = tracker.update(boxes, scores)          # or tracker.predict() on frames not detected
...     for track, detection in update.matched: ...      # detection: its row in boxes

Each frame the tracks' boxes are predicted; confident detections (score >= ``high_score``) are matched
to all tracks first, then the weak ones (``low_score`` <= score < ``high_score``) to the tracks still
unmatched (a face half hidden scores low but is still the same face), each stage by the assignment of
least total cost (1 - IoU) with a minimum IoU. Only confident detections start tracks; a track missed
for more than ``max_age`` frames ends. Ids are never reused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..errors import BadInputError, MissingDependencyError

# Noise as fractions of the box's size (ByteTrack's choice): a large near face moves and jitters by more pixels
# than a small far one, and a detector's boxes jump between pyramid scales, so fixed pixel noise would either
# lag near faces or chase the scale jumps of far ones with a growing predicted box.
_POSITION_NOISE = 1 / 20  # of the side: measurement and process noise of the centre and the area's scale
_VELOCITY_NOISE = 1 / 160  # of the side per frame: how fast a velocity may change
_ASPECT_NOISE = 1e-2


def _box_to_measurement(box) -> np.ndarray:
    left, top, right, bottom = (float(v) for v in box)
    width, height = right - left + 1, bottom - top + 1
    return np.array([left + width / 2, top + height / 2, width * height, width / height])


def _measurement_to_box(z) -> np.ndarray:
    cx, cy, area, aspect = z[:4]
    width = np.sqrt(max(area, 1.0) * aspect)
    height = max(area, 1.0) / width
    return np.array([cx - width / 2, cy - height / 2, cx + width / 2 - 1, cy + height / 2 - 1])


class BoxKalman:
    """A constant-velocity Kalman filter on one box's centre, area and aspect ratio (the ratio has no velocity).

    State [cx, cy, area, aspect, vx, vy, v_area], measured [cx, cy, area, aspect]; noise scales with the box."""

    _F = np.eye(7) + np.eye(7, k=4)  # cx, cy and area += their velocities (rows 0-2, columns 4-6)
    _H = np.eye(4, 7)

    def __init__(self, box):
        self.x = np.zeros(7)
        self.x[:4] = _box_to_measurement(box)
        side, area = self._scale()
        self.P = np.diag(np.square([2 * _POSITION_NOISE * side, 2 * _POSITION_NOISE * side, 2 * _POSITION_NOISE * area,
                                    _ASPECT_NOISE, 10 * _VELOCITY_NOISE * side, 10 * _VELOCITY_NOISE * side,
                                    10 * _VELOCITY_NOISE * area]))

    def _scale(self) -> tuple[float, float]:
        area = max(float(self.x[2]), 1.0)
        return float(np.sqrt(area)), area

    def predict(self) -> np.ndarray:
        if self.x[2] + self.x[6] <= 0:  # a shrinking box stops shrinking before it vanishes
            self.x[6] = 0.0
        side, area = self._scale()
        noise = np.diag(np.square([_POSITION_NOISE * side, _POSITION_NOISE * side, _POSITION_NOISE * area,
                                   _ASPECT_NOISE, _VELOCITY_NOISE * side, _VELOCITY_NOISE * side,
                                   _VELOCITY_NOISE * area]))
        self.x = self._F @ self.x
        self.P = self._F @ self.P @ self._F.T + noise
        return self.box

    def update(self, box) -> None:
        side, area = self._scale()
        noise = np.diag(np.square([_POSITION_NOISE * side, _POSITION_NOISE * side, 2 * _POSITION_NOISE * area,
                                   _ASPECT_NOISE]))
        residual = _box_to_measurement(box) - self._H @ self.x
        s = self._H @ self.P @ self._H.T + noise
        gain = self.P @ self._H.T @ np.linalg.inv(s)
        self.x = self.x + gain @ residual
        self.P = (np.eye(7) - gain @ self._H) @ self.P

    @property
    def box(self) -> np.ndarray:
        return _measurement_to_box(self.x)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), inclusive corners."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left + 1, 0, None) * np.clip(bottom - top + 1, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _linear_sum_assignment():
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise MissingDependencyError("tracking faces needs SciPy (the assignment of detections to tracks): "
                                     "pip install scipy") from None
    return linear_sum_assignment


def match_by_iou(track_boxes: np.ndarray, det_boxes: np.ndarray, min_iou: float):
    """(pairs [(track row, detection row)], unmatched track rows, unmatched detection rows): the assignment of
    largest total IoU, pairs under ``min_iou`` refused."""
    if len(track_boxes) == 0 or len(det_boxes) == 0:
        return [], list(range(len(track_boxes))), list(range(len(det_boxes)))
    iou = iou_matrix(track_boxes, det_boxes)
    rows, cols = _linear_sum_assignment()(1.0 - iou)
    pairs = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
    matched_rows, matched_cols = {r for r, _ in pairs}, {c for _, c in pairs}
    return (pairs, [r for r in range(len(track_boxes)) if r not in matched_rows],
            [c for c in range(len(det_boxes)) if c not in matched_cols])


@dataclass(eq=False)
class Track:
    id: int
    kalman: BoxKalman = field(repr=False)
    score: float
    age: int = 1  # frames since it started
    hits: int = 1  # frames it was matched to a detection
    missed: int = 0  # frames since it was last matched
    lost: bool = False  # missed by the last detection run

    @property
    def box(self) -> list[int]:
        return [int(round(v)) for v in self.kalman.box]


@dataclass
class TrackUpdate:
    """What one frame did to the tracks."""

    tracks: list[Track]  # alive after the frame, oldest first
    matched: list[tuple[Track, int]]  # each track seen this frame, with its detection's row
    started: list[Track]
    ended: list[Track]


class Tracker:
    """Tracks of one stream's faces. ``ids``: an id source shared by several trackers (ids unique across streams)."""

    def __init__(self, high_score: float = 0.0, low_score: float = -0.6, min_iou: float = 0.2,
                 min_iou_low: float = 0.4, max_age: int = 15, ids=None):
        if not low_score <= high_score:
            raise BadInputError(f"low_score {low_score}: expected at most high_score {high_score}")
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise BadInputError(f"max_age {max_age!r}: expected a whole number of frames, at least 0")
        self.high_score, self.low_score, self.max_age = high_score, low_score, max_age
        self.min_iou, self.min_iou_low = min_iou, min_iou_low
        self.tracks: list[Track] = []
        self._ids = ids if ids is not None else itertools.count(1)

    def predict(self) -> TrackUpdate:
        """A frame with no detection run: every track moves by its velocity (tracks end only on detection runs)."""
        for track in self.tracks:
            track.kalman.predict()
            track.age, track.missed = track.age + 1, track.missed + 1
        return TrackUpdate(list(self.tracks), [], [], [])

    def update(self, boxes, scores) -> TrackUpdate:
        """A frame's detections (boxes (N, 4), scores (N,)) associated with the tracks."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        self.predict()
        predicted = np.array([t.kalman.box for t in self.tracks]).reshape(-1, 4)
        high = np.flatnonzero(scores >= self.high_score)
        low = np.flatnonzero((scores >= self.low_score) & (scores < self.high_score))
        pairs, rest, new = match_by_iou(predicted, boxes[high], self.min_iou)
        matched = [(self.tracks[r], int(high[c])) for r, c in pairs]
        recent = [r for r in rest if not self.tracks[r].lost]  # ByteTrack: weak boxes only continue live tracks
        pairs_low, _, _ = match_by_iou(predicted[recent], boxes[low], self.min_iou_low)
        matched += [(self.tracks[recent[r]], int(low[c])) for r, c in pairs_low]
        for track in self.tracks:
            track.lost = True
        for track, row in matched:
            track.kalman.update(boxes[row])
            track.score, track.hits, track.missed, track.lost = float(scores[row]), track.hits + 1, 0, False
        ended = [t for t in self.tracks if t.missed > self.max_age]
        started = [Track(next(self._ids), BoxKalman(boxes[high[c]]), float(scores[high[c]])) for c in new]
        matched += [(track, int(high[c])) for track, c in zip(started, new)]
        self.tracks = [t for t in self.tracks if t.missed <= self.max_age] + started
        return TrackUpdate(list(self.tracks), matched, started, ended)

    def end_all(self) -> list[Track]:
        """The stream ended: every track ends."""
        ended, self.tracks = self.tracks, []
        return ended
