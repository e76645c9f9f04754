"""Which part of a stream's frame the detector looks at, and how large: full passes and region passes.

>>> frames = FrameDetector(analyzer.detector, detect_every=3, min_face=50, low_score=tracker.low_score)
>>> found = frames.detect(frame.pixels, [t.box for t in tracker.tracks], index)   # Detections or None

The detector's window is MIN_FACE_SIDE (80) px: a face smaller than that in the image it looks at is missed.
Every ``detect_every``-th analysed frame is a full pass: the whole frame, scaled so that a ``min_face``-px face
fills the window (80/50 = 1.6x for 50 px faces; the cost grows with the scaled pixels, ~2x a pass at 1x).
The frames between are region passes: a square around each tracked face (REGION_MARGIN of its side on every
side, enough for the face to move between frames), scaled so the face is about REGION_FACE px, so each region
costs the same whatever the face's size (a few ms, against ~150 ms for a 960x540 frame at 1x). A tracked face is
then corrected by a measurement instead of the tracker's prediction alone; a face that enters between full
passes waits for the next one. With no track to look at between full passes nothing is due (None).

Both passes use the same detector and threshold, so their scores compare; results are merged by the detector's
own non-maximum suppression. Boxes are in frame coordinates, dlib's inclusive ``[left, top, right, bottom]``;
like dlib's they may reach past the frame's edge.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadInputError
from ..face.detector import MIN_FACE_SIDE, Detections, nms, scale_boxes

__all__ = ["REGION_FACE", "REGION_MARGIN", "FrameDetector"]

REGION_FACE = 96  # px a tracked face is scaled to in its region: one pyramid step (6/5) above the window
REGION_MARGIN = 0.5  # of the face's side, added on every side: the region is twice the face's side
MIN_REGION_SIDE = 24  # px (after scaling): a region cut this small by the frame's edge holds no findable face


class FrameDetector:
    """Full passes every ``detect_every``-th analysed frame, region passes around tracked faces in between.

    ``detector``: a FaceDetector (``detect(pixels, upsample=, threshold=)`` and its NMS contract).
    ``min_face``: the smallest face width (px, in the frame) a full pass finds; ``upsample``: doubles the frame that
    many times as FaceDetector does; the full pass uses the larger of the two enlargements. ``low_score``: the
    detector threshold of both passes (the tracker's weakest useful score).
    """

    def __init__(self, detector, *, detect_every: int = 1, min_face: int = 50, upsample: int = 0, low_score: float):
        for name, value, minimum in (("detect_every", detect_every, 1), ("min_face", min_face, 1),
                                     ("upsample", upsample, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise BadInputError(f"{name} {value!r}: expected a whole number, at least {minimum}")
        self.detector, self.detect_every, self.min_face = detector, int(detect_every), int(min_face)
        self.upsample, self.low_score = int(upsample), float(low_score)
        self.scale = max(MIN_FACE_SIDE / self.min_face, 2.0 ** self.upsample)  # of the full pass

    def is_full_pass(self, index: int) -> bool:
        """Analysed frame ``index`` (0 first) gets a full pass."""
        return index % self.detect_every == 0

    def detect(self, pixels: np.ndarray, tracked_boxes: list, index: int) -> Detections | None:
        """Faces of analysed frame ``index``: a full pass, a region pass around ``tracked_boxes`` (the tracks'
        latest boxes, frame coordinates), or None where neither is due (no track between full passes)."""
        if self.is_full_pass(index):
            return self.full_pass(pixels)
        regions = [r for r in (face_region(box, pixels.shape) for box in tracked_boxes) if r is not None]
        if not regions:
            return None
        return self._merged([self._region_pass(pixels, region) for region in regions])

    def full_pass(self, pixels: np.ndarray) -> Detections:
        """The whole frame, scaled so a ``min_face``-px face fills the detector's window."""
        rows, cols = pixels.shape[:2]
        self._check_frame(cols, rows)
        if self.scale >= 1 and math.log2(self.scale).is_integer():  # dlib's own pyramid_up: its exact boxes
            return self.detector.detect(pixels, upsample=int(math.log2(self.scale)), threshold=self.low_score)
        return self._scaled_detect(pixels, self.scale, (0, 0))

    def _check_frame(self, cols: int, rows: int) -> None:
        if self.min_face > min(cols, rows):
            raise BadInputError(f"min_face {self.min_face}: larger than the {cols}x{rows} frame; expected at most "
                                f"{min(cols, rows)} px")
        budget = getattr(self.detector, "max_pixels", None)
        if budget is not None and cols * rows * self.scale * self.scale > budget:
            smallest = math.ceil(MIN_FACE_SIDE * math.sqrt(cols * rows / budget))
            raise BadInputError(f"min_face {self.min_face}: the {cols}x{rows} frame enlarged {self.scale:g}x would "
                                f"pass the detector's limit of {budget:,} pixels; at least min_face {smallest} "
                                "for this frame size")

    def _region_pass(self, pixels: np.ndarray, region: tuple[int, int, int, int, float]) -> Detections:
        left, top, right, bottom, side = region
        scale = REGION_FACE / side
        crop = pixels[top : bottom + 1, left : right + 1]
        if min(crop.shape[:2]) * scale < MIN_REGION_SIDE:
            return Detections.empty()
        return self._scaled_detect(crop, scale, (left, top))

    def _scaled_detect(self, pixels: np.ndarray, scale: float, offset: tuple[int, int]) -> Detections:
        """Detections of ``pixels`` resized by ``scale``, boxes mapped back and moved by ``offset`` (x, y)."""
        rows, cols = pixels.shape[:2]
        size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
        resized = resize(pixels, size) if size != (cols, rows) else pixels
        found = self.detector.detect(resized, threshold=self.low_score)
        boxes = scale_boxes(found.boxes, cols / size[0], rows / size[1]) if resized is not pixels else found.boxes
        return Detections(boxes + np.array([offset[0], offset[1], offset[0], offset[1]]), found.scores)

    def _merged(self, found: list[Detections]) -> Detections:
        boxes = np.concatenate([f.boxes for f in found]).reshape(-1, 4).astype(np.int64)
        scores = np.concatenate([f.scores for f in found]).astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        boxes, scores = boxes[order], scores[order]
        contract = self.detector.contract
        keep = nms(boxes, contract.nms_iou, contract.nms_covered)
        return Detections(boxes[keep].reshape(-1, 4), scores[keep])


def face_region(box, shape) -> tuple[int, int, int, int, float] | None:
    """The square around a tracked ``box`` a region pass looks at, cut at the frame's edges:
    (left, top, right, bottom) inclusive in the frame, and the face's side. None for a box off the frame."""
    left, top, right, bottom = (float(v) for v in box)
    side = max(right - left + 1, bottom - top + 1)
    if not math.isfinite(side) or side < 1:
        return None
    half = side * (0.5 + REGION_MARGIN)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    rows, cols = shape[:2]
    x0, y0 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
    x1, y1 = min(cols - 1, math.ceil(cx + half)), min(rows - 1, math.ceil(cy + half))
    if x1 < x0 or y1 < y0:
        return None
    return x0, y0, x1, y1, side


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 resized to ``size`` (width, height) by Pillow's bilinear filter (averaging when shrinking)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).resize(size, Image.BILINEAR))
