"""Which part of a stream's frame the detector looks at, and how large: full passes and region passes.

>>> frames = FrameDetector(analyzer.detector, detect_every=3, min_face=50, low_score=tracker.low_score)
>>> found = frames.detect(frame.pixels, [t.box for t in tracker.tracks], index)   # Detections or None

The detector's window is 80 px; it finds faces from about FOUND_FROM (72) px in the image it looks at (measured
on LFW faces pasted on a photo: 36/36 found at 72 px, 35/36 at 70, 30/36 at 67). Every ``detect_every``-th analysed
frame is a full pass: the whole frame, scaled so that a ``min_face``-px face is FOUND_FROM px (72/50 = 1.44x for
50 px faces, where FaceDetector's upsample doubles it: 2.07x the pixels of the frame instead of 4x).
The frames between are region passes: a square around each tracked face (REGION_MARGIN of its side on every
side, enough for the face to move between frames), scaled so the face is 80-96 px (a whole number of pyramid
steps from the full pass's scale: the same box sizes), so a region costs the same whatever the face's size, about
a thirtieth of a full pass of a 960x540 frame at 1.44x (see docs/cameras.md for the figures). A tracked face is
then corrected by a measurement instead of the tracker's prediction alone; a face that enters between full
passes waits for the next one. With no track to look at between full passes nothing is due (None).

With ``motion`` on, a face that enters between full passes does not wait: every frame's grey, averaged over
MOTION_CELL-px cells, is compared with a running average of the frames before (the background); cells that
changed by more than MOTION_THRESHOLD grey levels, and are not in or near a tracked face's region, are
pending (groups narrower than half a ``min_face`` are dropped: a tracked face's fringe, no new face). Each
frame the pending cells' connected groups, oldest first, are looked at (each group's box grown by
MOTION_MARGIN of ``min_face``, at the full pass's scale) up to ``motion_share`` of the frame's pixels; a group
larger than that is looked at one tile a frame; the rest waits for the next frame. Full passes then only catch
faces that never moved: every ``full_every`` frames (MOTION_FULL_EVERY, 4 s at 15 fps, by default) a sweep
starts, the whole frame looked at in tiles (at most ``motion_share`` of its pixels each, overlapping by twice
``min_face``) spread over the frames that follow, one tile a frame at most, so no frame pays for a whole look (a frame that took
half a second would drop the next seven of a 15 fps camera); the tiles' seams move by half a step from one sweep
to the next, so a still face that straddles one is inside a tile the next time. The first frame is a full pass (a
watch starts knowing who is in view), and a still frame with no track costs only its sweep's tile.

Both passes use the same detector and threshold, so their scores compare; results are merged by the detector's
own non-maximum suppression. Boxes are in frame coordinates, dlib's inclusive ``[left, top, right, bottom]``;
like dlib's they may reach past the frame's edge.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadInputError
from ..face.detector import Detections, nms, scale_boxes

__all__ = ["FOUND_FROM", "MOTION_FULL_EVERY", "REGION_FACE", "REGION_MARGIN", "FrameDetector", "MotionCells"]

FOUND_FROM = 72  # px: the smallest face (detector box width) the 80-px window finds reliably, measured
REGION_FACE = 80  # px a tracked face is at least in its region: over FOUND_FROM by more than a box's jitter
REGION_MARGIN = 0.4  # of the face's side, added on every side: the region is 1.8 times the face's side
MIN_REGION_SIDE = 24  # px (after scaling): a region cut this small by the frame's edge holds no findable face
MOTION_CELL = 8  # px: the side of the cells whose mean grey is compared with the background
MOTION_THRESHOLD = 10.0  # grey levels a cell's mean changes by to be motion: over a video codec's noise
BACKGROUND_RATE = 0.25  # weight of the new frame in the running-average background
MOTION_MARGIN = 0.6  # of min_face, added on every side of a moving group: the whole face and the detector's border
MOTION_SHARE = 0.125  # of the frame's pixels looked at for motion a frame: about 1/8 of a full pass's cost
MOTION_FULL_EVERY = 60  # analysed frames between sweeps with motion on: 4 s at 15 fps, a tile every 2-3 frames
SWEEP_OVERLAP = 2.0  # of min_face: the overlap of a sweep's tiles, so a face up to twice min_face is whole in one


class FrameDetector:
    """Full passes every ``detect_every``-th analysed frame, region passes around tracked faces in between.

    ``detector``: a FaceDetector (``detect(pixels, upsample=, threshold=)`` and its NMS contract).
    ``min_face``: the smallest face width (px, in the frame) a full pass finds; ``upsample``: doubles the frame that
    many times as FaceDetector does; the full pass uses the larger of the two scales. ``low_score``: the
    detector threshold of both passes (the tracker's weakest useful score).
    """

    def __init__(self, detector, *, detect_every: int = 1, min_face: int = 50, upsample: int = 0, low_score: float,
                 motion: bool = False, full_every: int | None = None, motion_share: float = MOTION_SHARE):
        for name, value, minimum in (("detect_every", detect_every, 1), ("min_face", min_face, 1),
                                     ("upsample", upsample, 0), ("full_every", 1 if full_every is None else full_every, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise BadInputError(f"{name} {value!r}: expected a whole number, at least {minimum}")
        if not 0 < motion_share <= 1:
            raise BadInputError(f"motion_share {motion_share!r}: expected a share of the frame over 0, at most 1")
        self.detector, self.detect_every, self.min_face = detector, int(detect_every), int(min_face)
        # the full passes' period: detect_every without motion, a slow safety net for still faces with it
        self.full_every = int(full_every or (MOTION_FULL_EVERY if motion else detect_every))
        self.motion = MotionCells(math.ceil(MOTION_MARGIN * self.min_face), motion_share) if motion else None
        self.upsample, self.low_score = int(upsample), float(low_score)
        # of the full pass: under 1 for faces over FOUND_FROM (min_face 144: half the width, a quarter of the work)
        self.scale = max(FOUND_FROM / self.min_face, 2.0 ** self.upsample if self.upsample else 0.0)
        self.motion_share = float(motion_share)
        self._sweep: list = []  # the sweep under way: its looks still to come, one a frame
        self._sweeps = 0

    def is_full_pass(self, index: int) -> bool:
        """Analysed frame ``index`` (0 first) gets a full pass."""
        return index % self.full_every == 0

    def detect(self, pixels: np.ndarray, tracked_boxes: list, index: int) -> Detections | None:
        """Faces of analysed frame ``index``: a full pass, a region pass around ``tracked_boxes`` (the tracks'
        latest boxes, frame coordinates) and, with motion on, passes over moving areas no track covers; None
        where none is due (no track and no motion between full passes)."""
        full = self.is_full_pass(index) and (self.motion is None or index == 0)
        regions = [r for r in (face_region(box, pixels.shape) for box in tracked_boxes) if r is not None]
        if self.motion is not None:
            self.motion.update(pixels, regions, clear=full)
            if index and self.is_full_pass(index) and not self._sweep:  # a sweep longer than the period ends first
                self._sweep = self.sweep_tiles(pixels.shape[1], pixels.shape[0])
        if full:
            return self.full_pass(pixels)
        found = [self._region_pass(pixels, region) for region in regions]
        if self.motion is not None:
            scale = self.full_pass_scale(pixels.shape[1], pixels.shape[0])
            looks = self.motion.due() + [tile for tile in self._sweep[:1] if tile is not None]
            self._sweep = self._sweep[1:]
            found += [self._scaled_detect(pixels[top : bottom + 1, left : right + 1], scale, (left, top))
                      for left, top, right, bottom in looks]
        return self._merged(found) if found else None

    def sweep_tiles(self, cols: int, rows: int) -> list[tuple[int, int, int, int] | None]:
        """The looks of a sweep, one a frame over the next ``full_every`` frames (None: a frame without one):
        tiles (left, top, right, bottom inclusive) of at most ``motion_share`` of the frame (but at least twice
        their overlap across), overlapping by SWEEP_OVERLAP of ``min_face``; every other sweep's grid is moved
        by half a step, so no seam stays where a still face is."""
        overlap = math.ceil(SWEEP_OVERLAP * self.min_face)
        side = max(int(math.sqrt(self.motion_share * cols * rows)), 2 * overlap)
        shift = self._sweeps % 2
        self._sweeps += 1
        tiles = [(left, top, right, bottom) for top, bottom in tile_spans(rows, side, overlap, shift)
                 for left, right in tile_spans(cols, side, overlap, shift)]
        every = max(1, self.full_every // len(tiles))  # spread over the period, not bunched at its start
        return [tile for tile in tiles for tile in (tile, *[None] * (every - 1))]

    def full_pass(self, pixels: np.ndarray) -> Detections:
        """The whole frame, scaled so a ``min_face``-px face is FOUND_FROM px: dlib's own boxes where that scale
        is a power of two (1x for min_face 72, FaceDetector's upsample 1 for 36), resized by Pillow otherwise."""
        rows, cols = pixels.shape[:2]
        if self.min_face > min(cols, rows):
            raise BadInputError(f"min_face {self.min_face}: larger than the {cols}x{rows} frame; expected at most "
                                f"{min(cols, rows)} px")
        scale = self.full_pass_scale(cols, rows)
        if scale >= 1 and math.log2(scale).is_integer():  # dlib's own pyramid_up: its exact boxes
            return self.detector.detect(pixels, upsample=int(math.log2(scale)), threshold=self.low_score)
        return self._scaled_detect(pixels, scale, (0, 0))

    def full_pass_scale(self, cols: int, rows: int) -> float:
        """The full pass's enlargement of a cols x rows frame: ``scale``, or less where the frame would pass the
        detector's pixel budget (``max_pixels``, 1920x1080): as with FaceDetector's upsample, the budget wins, and
        the smallest face found is then FOUND_FROM / this scale (72 px in a 1080p frame)."""
        budget = getattr(self.detector, "max_pixels", None)
        if budget is None or cols * rows * self.scale * self.scale <= budget:
            return self.scale
        return math.sqrt(budget / (cols * rows))

    def _region_pass(self, pixels: np.ndarray, region: tuple[int, int, int, int, float]) -> Detections:
        left, top, right, bottom, side = region
        scale = self.region_scale(side, self.full_pass_scale(pixels.shape[1], pixels.shape[0]))
        crop = pixels[top : bottom + 1, left : right + 1]
        if min(crop.shape[:2]) * scale < MIN_REGION_SIDE:
            return Detections.empty()
        return self._scaled_detect(crop, scale, (left, top))

    def region_scale(self, side: float, full_scale: float) -> float:
        """How much a region around a ``side``-px face is resized: the full pass's scale times a whole number of
        pyramid steps (N/(N-1), 6/5 for dlib's detector), the face at REGION_FACE px or up to one step more. The
        region's pyramid then looks at the face at the same scales as the full pass's, so both give the same box
        sizes and comparable scores."""
        step = self.detector.contract.pyramid_downsample / (self.detector.contract.pyramid_downsample - 1.0)
        steps = math.ceil(math.log(REGION_FACE / (side * full_scale)) / math.log(step) - 1e-9)
        return full_scale * step ** steps

    def _scaled_detect(self, pixels: np.ndarray, scale: float, offset: tuple[int, int]) -> Detections:
        """Detections of ``pixels`` resized by ``scale``, boxes mapped back and moved by ``offset`` (x, y)."""
        rows, cols = pixels.shape[:2]
        size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
        if size[0] * size[1] > getattr(self.detector, "max_pixels", math.inf):  # a budget-capped scale
            size = (max(1, math.floor(cols * scale)), max(1, math.floor(rows * scale)))
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


class MotionCells:
    """Which parts of a stream's frames moved and still wait for the detector (see the module's docstring).

    ``margin``: px added on every side of a moving group; ``share``: of the frame's pixels :meth:`due` returns
    at most (one tile at least, so the oldest group always moves on)."""

    def __init__(self, margin: int, share: float):
        self.margin, self.share = int(margin), float(share)
        # a group narrower than this holds no face: half a min_face (the margin is 0.6 of it), and the dilation
        self.min_cells = math.ceil(self.margin / 1.2 / MOTION_CELL) + 1
        self.background: np.ndarray | None = None  # running-average grey per cell
        self.since: np.ndarray | None = None  # the frame a pending cell first moved in, -1 where none is pending
        self.frame, self.shape = 0, (0, 0)

    def update(self, pixels: np.ndarray, regions: list, clear: bool = False) -> None:
        """Note this frame's moving cells as pending, forget the pending cells in tracked ``regions`` (their
        region passes look there) and, with ``clear`` (a full pass looks everywhere), all of them."""
        grey = cell_grey(pixels)
        self.shape, self.frame = pixels.shape[:2], self.frame + 1
        if self.background is None or self.background.shape != grey.shape:
            self.background, self.since = grey, np.full(grey.shape, -1, np.int64)
            return  # the first frame: nothing to compare with yet
        moved = dilated(np.abs(grey - self.background) > MOTION_THRESHOLD)
        self.background = self.background + BACKGROUND_RATE * (grey - self.background)
        self.since[moved & (self.since < 0)] = self.frame
        if clear:
            self.since[:] = -1
        for left, top, right, bottom, _ in regions:  # and a margin around: the tracked face's own moving fringe
            top, left = max(0, top - self.margin) // MOTION_CELL, max(0, left - self.margin) // MOTION_CELL
            self.since[top : (bottom + self.margin) // MOTION_CELL + 1, left : (right + self.margin) // MOTION_CELL + 1] = -1

    def due(self) -> list[tuple[int, int, int, int]]:
        """The boxes (left, top, right, bottom inclusive, frame px) to look at this frame, oldest motion first,
        at most ``share`` of the frame's pixels; their cells stop being pending."""
        if self.since is None or not (self.since >= 0).any():
            return []
        from scipy import ndimage

        labels, count = ndimage.label(self.since >= 0)
        groups = ndimage.find_objects(labels)
        oldest = ndimage.minimum(self.since, labels, range(1, count + 1))
        budget = self.share * self.shape[0] * self.shape[1]
        left_over, boxes = budget, []
        for i in np.argsort(oldest, kind="stable"):
            if min(part.stop - part.start for part in groups[i]) < self.min_cells:  # too thin to hold a face
                self.since[labels == i + 1] = -1
                continue
            box = self._grown(groups[i])
            area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
            if area <= left_over:
                boxes.append(box)
                self.since[labels == i + 1] = -1
                left_over -= area
            elif left_over == budget:  # the oldest group is larger than a frame's share: one tile of it
                boxes.append(self._tile(box, labels == i + 1, budget))
                left_over = 0
        return boxes

    def _grown(self, group: tuple[slice, slice]) -> tuple[int, int, int, int]:
        rows, cols = self.shape
        top, bottom = group[0].start * MOTION_CELL - self.margin, group[0].stop * MOTION_CELL - 1 + self.margin
        left, right = group[1].start * MOTION_CELL - self.margin, group[1].stop * MOTION_CELL - 1 + self.margin
        return max(0, left), max(0, top), min(cols - 1, right), min(rows - 1, bottom)

    def _tile(self, box: tuple[int, int, int, int], group: np.ndarray, budget: float) -> tuple[int, int, int, int]:
        """A tile of ``box`` within ``budget`` pixels from the group's first pending cell (top row, then leftmost);
        its cells stop being pending, but for those within the margin of an edge the box goes on past (the next
        tile, grown by the margin, covers them)."""
        rows, cols = np.nonzero(group)
        first = int(np.argmin(rows * group.shape[1] + cols))
        left = max(box[0], int(cols[first]) * MOTION_CELL - self.margin)
        top = max(box[1], int(rows[first]) * MOTION_CELL - self.margin)
        right, bottom = box[2], box[3]
        width, height = right - left + 1, bottom - top + 1
        side = max(int(math.sqrt(budget)), 2 * self.margin + MOTION_CELL)
        tile_w = min(width, max(side, int(budget // height)))
        tile_h = min(height, max(side, int(budget // tile_w)))
        tile = (left, top, left + tile_w - 1, top + tile_h - 1)
        done_right = tile[2] if tile[2] == right else tile[2] - self.margin
        done_bottom = tile[3] if tile[3] == bottom else tile[3] - self.margin
        cells = (slice(top // MOTION_CELL, (done_bottom + 1) // MOTION_CELL),
                 slice(left // MOTION_CELL, (done_right + 1) // MOTION_CELL))
        self.since[cells] = -1
        # where the tile is wider than the margin on no side, its first cell still goes (no tile looks twice)
        self.since[int(rows[first]), int(cols[first])] = -1
        return tile


def tile_spans(length: int, side: int, overlap: int, shift: int) -> list[tuple[int, int]]:
    """The (first, last) px of tiles of at most ``side`` px, overlapping by ``overlap``, covering ``length`` px;
    with ``shift`` the grid starts half a step early (its first and last tiles narrower)."""
    if side >= length:
        return [(0, length - 1)]
    step = side - overlap
    start, spans = -(step // 2) if shift else 0, []
    while True:
        spans.append((max(0, start), min(length, start + side) - 1))
        if start + side >= length:
            return spans
        start += step


def cell_grey(pixels: np.ndarray) -> np.ndarray:
    """(H // MOTION_CELL, W // MOTION_CELL) float32: each cell's mean grey (the mean of its channels)."""
    rows, cols = pixels.shape[0] // MOTION_CELL, pixels.shape[1] // MOTION_CELL
    cells = pixels[: rows * MOTION_CELL, : cols * MOTION_CELL].reshape(rows, MOTION_CELL, cols, MOTION_CELL, -1)
    return cells.sum(axis=(1, 3, 4), dtype=np.uint32).astype(np.float32) / (MOTION_CELL * MOTION_CELL * cells.shape[-1])


def dilated(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one cell in every direction (8-connected): a face's edges move more than its middle."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    wide = grown.copy()
    wide[:, 1:] |= grown[:, :-1]
    wide[:, :-1] |= grown[:, 1:]
    return wide


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
