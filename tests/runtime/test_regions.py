"""FrameDetector: full passes scaled for min_face, region passes around tracked faces, and their schedule.

Scenes: real LFW faces (the photo scaled so the detector's own box on it is the wanted width) pasted on a 960x540
BSDS500 photo. Box sizes of the MMOD detector come in 6/5 steps (its pyramid), so two passes that see a face at
different scales agree within one step: IoU >= 0.6 ((5/6)^2 = 0.69 for two concentric boxes one step apart).
"""

from __future__ import annotations

import numpy as np
import pytest
from stream_scenes import LFW, background

from conftest import require_shared
from facestyle.errors import BadInputError
from facestyle.streams.regions import FrameDetector, tile_spans
from facestyle.streams.tracker import iou_matrix

LOW = -0.6  # the tracker's low score
SAME_FACE_IOU = 0.6  # one pyramid step apart at most (see the module's docstring)


@pytest.fixture(scope="module")
def detector(engines_dir):
    from facestyle.face.detector import FaceDetector

    return FaceDetector.from_engines(engines_dir)


@pytest.fixture(scope="module")
def lfw_faces(detector):
    """Two LFW photos, each cut around its one face, with the face's box in the cut."""
    from facestyle.images import load_image

    faces = []
    for person in ("Aaron_Peirsol", "Adam_Sandler"):
        photo = load_image(require_shared(LFW / person / f"{person}_0001.jpg"))
        found = detector.detect(photo)
        assert len(found) == 1
        box = found.boxes[0]
        grow = (box[2] - box[0] + 1) // 4
        left, top = max(0, box[0] - grow), max(0, box[1] - grow)
        cut = photo[top : box[3] + grow + 1, left : box[2] + grow + 1]
        faces.append((cut, box - np.array([left, top, left, top])))
    return faces


def paste(frame, face, width, left, top) -> np.ndarray:
    """``face`` (photo, box) scaled to a ``width``-px box, its box's top-left at (left, top); returns the box."""
    from PIL import Image

    photo, box = face
    k = width / (box[2] - box[0] + 1)
    patch = np.asarray(Image.fromarray(photo).resize((round(photo.shape[1] * k), round(photo.shape[0] * k)),
                                                     Image.BILINEAR))
    px, py = left - round(box[0] * k), top - round(box[1] * k)
    x0, y0 = max(px, 0), max(py, 0)
    x1, y1 = min(px + patch.shape[1], frame.shape[1]), min(py + patch.shape[0], frame.shape[0])
    frame[y0:y1, x0:x1] = patch[y0 - py : y1 - py, x0 - px : x1 - px]
    return np.array([left, top, left + width - 1, top + width - 1])


def scene(faces_at) -> tuple[np.ndarray, list[np.ndarray]]:
    frame = background(960, 540).copy()
    return frame, [paste(frame, face, width, left, top) for face, width, left, top in faces_at]


def best_iou(found, box) -> float:
    return float(iou_matrix(found.boxes, [box]).max(initial=0.0))


def test_a_50_px_face_is_found_with_min_face_50_and_missed_with_min_face_80(detector, lfw_faces):
    frame, (truth,) = scene([(lfw_faces[0], 50, 400, 250)])
    found = FrameDetector(detector, min_face=50, low_score=LOW).full_pass(frame)
    assert best_iou(found, truth) >= 0.5
    assert found.scores[np.argmax(iou_matrix(found.boxes, [truth])[:, 0])] > 0  # a confident detection
    missed = FrameDetector(detector, min_face=80, low_score=LOW).full_pass(frame)
    assert best_iou(missed, truth) < 0.3


def test_a_region_pass_puts_the_full_pass_box_on_a_tracked_face(detector, lfw_faces):
    frame, truths = scene([(lfw_faces[0], 50, 200, 200), (lfw_faces[1], 90, 600, 150)])
    frames = FrameDetector(detector, detect_every=3, min_face=50, low_score=LOW)
    full = frames.detect(frame, [], 0)
    tracked = [full.boxes[np.argmax(iou_matrix(full.boxes, [t])[:, 0])] for t in truths]
    region = frames.detect(frame, tracked, 1)
    assert len(region) == 2
    for box in tracked:
        assert best_iou(region, box) >= SAME_FACE_IOU
    assert (region.scores > 0).all()  # same threshold, same detector: confident in both passes


def test_full_passes_every_detect_every_frames_regions_between_and_none_without_tracks(detector, lfw_faces):
    frame, truths = scene([(lfw_faces[0], 60, 150, 200), (lfw_faces[1], 60, 700, 300)])
    frames = FrameDetector(detector, detect_every=3, min_face=50, low_score=LOW)
    one_track = [truths[0]]
    assert [frames.is_full_pass(i) for i in range(7)] == [True, False, False, True, False, False, True]
    assert frames.detect(frame, [], 1) is None and frames.detect(frame, [], 2) is None
    region = frames.detect(frame, one_track, 2)  # only the tracked face is looked at
    assert best_iou(region, truths[0]) >= SAME_FACE_IOU and best_iou(region, truths[1]) == 0
    full = frames.detect(frame, one_track, 3)  # both faces, tracked or not
    assert all(best_iou(full, t) >= 0.5 for t in truths)


def test_boxes_of_a_face_cut_by_the_frame_edge_are_in_frame_coordinates(detector, lfw_faces):
    frame, (truth,) = scene([(lfw_faces[1], 100, -12, -8)])  # its box reaches past the left and top edges
    frames = FrameDetector(detector, detect_every=2, min_face=50, low_score=LOW)
    full = frames.detect(frame, [], 0)
    box = full.boxes[np.argmax(iou_matrix(full.boxes, [truth])[:, 0])]
    assert best_iou(full, truth) >= 0.5
    region = frames.detect(frame, [box], 1)
    assert best_iou(region, box) >= SAME_FACE_IOU
    assert region.boxes[:, :2].min() < 10  # near the corner, not shifted into the region's own coordinates
    assert frames.detect(frame, [[-500, -500, -400, -400]], 1) is None  # a track off the frame: nothing to look at


@pytest.mark.parametrize("min_face", [0, -5, 2.5, True])
def test_a_min_face_that_is_not_a_positive_whole_number_is_refused(detector, min_face):
    with pytest.raises(BadInputError, match=rf"min_face {min_face!r}: expected a whole number, at least 1"):
        FrameDetector(detector, min_face=min_face, low_score=LOW)


def test_a_min_face_larger_than_the_frame_is_refused(detector):
    frame = np.zeros((540, 960, 3), np.uint8)
    with pytest.raises(BadInputError, match=r"min_face 600: larger than the 960x540 frame; expected at most 540"):
        FrameDetector(detector, min_face=600, low_score=LOW).detect(frame, [], 0)


def test_the_full_pass_never_looks_at_more_than_the_detectors_pixel_budget(detector):
    assert detector.max_pixels == 1920 * 1080
    small_faces = FrameDetector(detector, min_face=20, low_score=LOW)  # 3.6x wanted
    assert small_faces.full_pass_scale(480, 270) == pytest.approx(3.6)
    assert small_faces.full_pass_scale(960, 540) == pytest.approx(2.0)  # 1920x1080 looked at
    assert small_faces.full_pass_scale(1920, 1080) == pytest.approx(1.0)
    assert FrameDetector(detector, min_face=144, low_score=LOW).full_pass_scale(1920, 1080) == pytest.approx(0.5)


class CountingDetector:
    """A real FaceDetector that notes the size of every image it is given, then detects in it."""

    def __init__(self, detector):
        self.detector, self.looked_at = detector, []

    def detect(self, pixels, **options):
        self.looked_at.append(pixels.shape[:2])
        return self.detector.detect(pixels, **options)

    def __getattr__(self, name):
        return getattr(self.detector, name)


def walking_in(face, frames: int, width: int = 50):
    """Frames of the background with ``face`` walking in from the left edge, 8 px a frame, and its boxes."""
    out = []
    for i in range(frames):
        frame = background(960, 540).copy()
        out.append((frame, paste(frame, face, width, -40 + 8 * i, 240) if i else None))
    return out


def test_with_motion_a_face_walking_in_between_full_passes_is_found_before_the_next(detector, lfw_faces):
    counting = CountingDetector(detector)
    frames = FrameDetector(counting, min_face=50, low_score=LOW, motion=True, full_every=30)
    clip = walking_in(lfw_faces[0], 12)
    assert frames.detect(clip[0][0], [], 0) is not None and len(counting.looked_at) == 1  # the full pass
    found_at = None
    for index, (frame, truth) in enumerate(clip[1:], start=1):
        found = frames.detect(frame, [], index)
        if found is not None and truth is not None and best_iou(found, truth) >= 0.5 and truth[0] >= 0:
            found_at = index
            break
    assert found_at is not None and found_at < 30
    assert max(h * w for h, w in counting.looked_at[1:]) < 960 * 540  # motion passes, no whole frame


def test_with_motion_a_still_face_is_found_by_a_sweep_that_looks_at_a_share_of_the_frame_a_frame(detector, lfw_faces):
    frame, (truth,) = scene([(lfw_faces[0], 60, 300, 200)])
    counting = CountingDetector(detector)
    frames = FrameDetector(counting, min_face=50, low_score=LOW, motion=True, full_every=10, motion_share=0.125)
    assert [frames.is_full_pass(i) for i in (0, 1, 9, 10)] == [True, False, False, True]
    for index in range(1, 10):  # no full pass at 0 here: nothing moves, so nothing is looked at until the sweep
        assert frames.detect(frame, [], index) is None
    assert counting.looked_at == []
    found = [frames.detect(frame, [], index) for index in range(10, 40)]
    assert any(f is not None and best_iou(f, truth) >= 0.5 for f in found)
    scale = frames.full_pass_scale(960, 540)
    sides = int(np.sqrt(0.125 * 960 * 540))  # a tile's side at most, before scaling
    assert 960 * 540 * scale * scale > 7 * max(h * w for h, w in counting.looked_at)  # never the whole frame
    assert max(max(h, w) for h, w in counting.looked_at) <= round(sides * scale) + 1
    # a tile a frame: the first sweep's 18 (6 across, 3 down) on frames 10-27 (none starts at 20, one is under
    # way), then 10 of the next sweep's 28 (its grid moved by half a step) on frames 30-39
    assert len(counting.looked_at) == 18 + 10


def test_sweeps_cover_the_frame_with_overlaps_that_hold_a_face_and_move_their_seams():
    assert tile_spans(960, 254, 100, 0) == [(0, 253), (154, 407), (308, 561), (462, 715), (616, 869), (770, 959)]
    shifted = tile_spans(960, 254, 100, 1)
    assert shifted[0] == (0, 176) and shifted[-1][1] == 959
    for spans in (tile_spans(960, 254, 100, 0), shifted, tile_spans(540, 254, 100, 1)):
        assert all(a[1] - b[0] + 1 >= 100 for a, b in zip(spans, spans[1:]))  # neighbours overlap by 100 px
    seams = {a[1] for a in tile_spans(960, 254, 100, 0)[:-1]}
    assert not seams & {a[1] for a in shifted[:-1]}  # no seam in the same place twice running
    assert tile_spans(200, 254, 100, 1) == [(0, 199)]


def test_motion_passes_look_at_no_more_than_their_share_a_frame_and_get_to_everything(detector):
    counting = CountingDetector(detector)
    frames = FrameDetector(counting, min_face=50, low_score=LOW, motion=True, full_every=1000, motion_share=0.125)
    still, changed = background(960, 540), 255 - background(960, 540)  # every cell moves at once
    frames.detect(still, [], 0)
    scale = frames.full_pass_scale(960, 540)
    per_frame = []
    for index in range(1, 60):
        before = len(counting.looked_at)
        frames.detect(changed if index == 1 else changed.copy(), [], index)
        per_frame.append(sum(h * w for h, w in counting.looked_at[before:]))
        if not (frames.motion.since >= 0).any():
            break
    assert max(per_frame) <= 0.125 * 960 * 540 * scale * scale * 1.05  # rounding of the resized sizes
    assert len(per_frame) > 4 and not (frames.motion.since >= 0).any()  # spread over frames, then all looked at


def test_with_motion_the_first_frame_only_starts_the_background(detector, lfw_faces):
    frame, _ = scene([(lfw_faces[0], 60, 300, 200)])
    counting = CountingDetector(detector)
    frames = FrameDetector(counting, min_face=50, low_score=LOW, motion=True, full_every=30)
    assert frames.detect(frame, [], 1) is None and counting.looked_at == []  # not a full pass, no motion known
    assert frames.detect(frame, [], 2) is None and counting.looked_at == []


@pytest.mark.parametrize(("options", "message"), [({"full_every": 0}, r"full_every 0: expected a whole number"),
                                                  ({"motion_share": 0}, r"motion_share 0: expected a share")])
def test_bad_motion_options_are_refused(detector, options, message):
    with pytest.raises(BadInputError, match=message):
        FrameDetector(detector, low_score=LOW, motion=True, **options)
