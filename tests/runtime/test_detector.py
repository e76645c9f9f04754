"""FaceDetector against dlib's own CNN face detector: identical integer boxes, scores within 1e-3.

dlib is slow here (a 250x250 image takes ~0.5 s at upsample 0 and ~2.5 s at upsample 1 on 2 cores),
so every oracle call is cached for the whole test run, the group photos are cropped or halved, and about
35 s of dlib time covers 17 image/upsample cases with 23 faces.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil

import numpy as np
import pytest

from conftest import FACES, SHARED_DATA, require_shared
from facestyle.errors import BadImageError, BadInputError, ManifestError, ModelFormatError
from facestyle.face.detector import (
    Detections,
    FaceDetector,
    build_pyramid_tensor,
    lround,
    pyramid_up,
    resize_bilinear_planes,
    resize_bilinear_rgb,
    tiled_pyramid_layout,
)

LFW = SHARED_DATA / "lfw-view1" / "lfw-deepfunneled"
LFW_COUNT = 8
SCORE_ATOL = 1e-3


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def detector_onnx(engines_dir):
    return engines_dir / "face-detect" / "fp32.onnx"


@pytest.fixture(scope="session")
def detector(detector_onnx):
    return FaceDetector.from_onnx(detector_onnx)


@pytest.fixture(scope="session")
def cnn_oracle(dlib):
    """dlib's CNN detector, each (image key, upsample) computed once per test run: (boxes, scores)."""
    from facestyle.export.dlib.files import DETECTOR_MODEL, locate_dlib_model

    net = dlib.cnn_face_detection_model_v1(str(locate_dlib_model(DETECTOR_MODEL)))
    cache: dict = {}

    def detect(key: str, image: np.ndarray, upsample: int):
        if (key, upsample) not in cache:
            found = net(image, upsample)
            boxes = np.array([[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in found], np.int64)
            cache[key, upsample] = (boxes.reshape(-1, 4), np.array([d.confidence for d in found], np.float64))
        return cache[key, upsample]

    return detect


@functools.cache
def astronaut() -> np.ndarray:
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    return load_image(skimage_data_dir() / "astronaut.png")


@functools.cache
def lfw_files() -> list:
    """The first image of LFW_COUNT people spread evenly over the alphabet (deterministic)."""
    people = sorted(p for p in require_shared(LFW).iterdir() if p.is_dir())
    return [sorted(p.glob("*.jpg"))[0] for p in people[:: len(people) // LFW_COUNT][:LFW_COUNT]]


@functools.cache
def group_photo(name: str) -> np.ndarray:
    from PIL import Image

    from facestyle.images import load_image

    if name == "multiface-crop":  # 6 faces of 80-95 px; cropped to them to keep dlib's time down
        return load_image(require_shared(FACES / "facenet_pytorch/data/multiface.jpg"))[30:600, 180:980]
    if name == "two_people-half":  # 1126x661 -> 563x330, 2 faces
        image = load_image(require_shared(FACES / "face_recognition_examples/examples/two_people.jpg"))
        small = Image.fromarray(image).resize((image.shape[1] // 2, image.shape[0] // 2), Image.BILINEAR)
        return np.asarray(small)
    raise KeyError(name)


def assert_same_as_dlib(found: Detections, reference, min_faces: int = 1) -> None:
    boxes, scores = reference
    assert len(boxes) >= min_faces, "the test image should hold faces that dlib finds"
    assert found.boxes.dtype == np.int64 and found.scores.dtype == np.float32
    np.testing.assert_array_equal(found.boxes, boxes)
    np.testing.assert_allclose(found.scores, scores, rtol=0, atol=SCORE_ATOL)


# --------------------------------------------------------------------------------------------
# Parity with dlib


@pytest.mark.parametrize("upsample", [0, 1])
def test_astronaut_matches_dlib(detector, cnn_oracle, upsample):
    image = astronaut()
    assert_same_as_dlib(detector.detect(image, upsample), cnn_oracle("astronaut", image, upsample))


# Upsample 1 costs dlib ~2.5 s per LFW image here, so half of them are checked at 1.
@pytest.mark.parametrize("index, upsample", [(i, 0) for i in range(LFW_COUNT)] + [(i, 1) for i in range(0, LFW_COUNT, 2)])
def test_lfw_matches_dlib(detector, cnn_oracle, index, upsample):
    from facestyle.images import load_image

    path = lfw_files()[index]
    image = load_image(path)
    assert_same_as_dlib(detector.detect(image, upsample), cnn_oracle(path.name, image, upsample))


@pytest.mark.parametrize("name, faces", [("multiface-crop", 6), ("two_people-half", 2)])
def test_group_photos_match_dlib(detector, cnn_oracle, name, faces):
    image = group_photo(name)
    found = detector.detect(image)
    assert_same_as_dlib(found, cnn_oracle(name, image, 0), min_faces=faces)
    assert np.all(np.diff(found.scores) <= 0), "best first, like dlib"


def test_grayscale_is_used_as_rgb_like_dlib(detector, cnn_oracle):
    from facestyle.images import load_image

    path = lfw_files()[0]
    grey = load_image(path)[..., 1].copy()
    found = detector.detect(grey)
    assert_same_as_dlib(found, cnn_oracle(path.name + ":grey", grey, 0))
    stacked = detector.detect(np.stack([grey] * 3, axis=-1))
    np.testing.assert_array_equal(found.boxes, stacked.boxes)
    np.testing.assert_array_equal(found.scores, stacked.scores)
    np.testing.assert_array_equal(detector.detect(grey[..., None]).boxes, found.boxes)


# --------------------------------------------------------------------------------------------
# The pieces, against dlib where dlib exposes them


@pytest.mark.parametrize(
    "shape, size",
    [((250, 250), (208, 208)), ((100, 37), (83, 30)), ((40, 60), (81, 122)), ((9, 1), (2, 3)), ((1, 1), (1, 1))],
)
def test_resizes_are_dlibs_bit_for_bit(dlib, shape, size):
    rng = np.random.default_rng(sum(shape))
    planes = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(resize_bilinear_planes(planes[None], *size)[0], dlib.resize_image(planes, *size))
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_bilinear_rgb(rgb, *size), dlib.resize_image(rgb, *size))


@pytest.mark.parametrize("shape", [(480, 640), (333, 517), (250, 250), (41, 97)])
def test_the_fast_pyramid_is_the_exact_emulation_to_float_rounding(detector, shape):
    """The default (separable) pyramid samples where dlib does; only float32 rounding differs, and the
    score map moves by far less than the parity tolerance. A reused tensor keeps its padding zero."""
    from facestyle.export.sample_inputs import natural_images

    image = natural_images([shape])[0]
    exact, rects = build_pyramid_tensor(image, detector.contract, exact=True)
    buffers = {}
    build_pyramid_tensor(natural_images([shape] * 3)[2], detector.contract, buffers=buffers)  # another photo first
    fast, fast_rects = build_pyramid_tensor(image, detector.contract, buffers=buffers)
    np.testing.assert_array_equal(rects, fast_rects)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=2e-6)  # the tensor's values are within +-0.5
    assert np.abs(detector.score_map(fast) - detector.score_map(exact)).max() < SCORE_ATOL / 10


def test_pyramid_up_size_is_rect_up_rounded():
    assert pyramid_up(np.zeros((250, 250, 3), np.uint8)).shape == (501, 502, 3)
    assert pyramid_up(np.zeros((1, 1, 3), np.uint8)).shape == (3, 4, 3)


def test_lround_rounds_halves_away_from_zero():
    np.testing.assert_array_equal(lround([-2.5, -1.5, -0.5, -0.4, 0.5, 1.5, 2.5, 2.49]), [-3, -2, -1, 0, 1, 2, 3, 2])


def test_tiled_pyramid_layout_of_an_lfw_image():
    rects, (rows, cols) = tiled_pyramid_layout(250, 250, 6, 10, 11)
    assert rects[0].tolist() == [11, 11, 260, 260]
    assert cols == 250 + 22 and rows > 250 + 22
    widths, heights = rects[:, 2] - rects[:, 0] + 1, rects[:, 3] - rects[:, 1] + 1
    levels = [250, 208, 173, 144, 120, 100, 83, 69, 57, 47, 39, 32, 26, 21, 17, 14, 11, 9, 7, 5]  # floor(5/6 * n)
    assert len(rects) >= 15 and widths.tolist() == heights.tolist() == levels[: len(rects)]
    assert (rects[:, :2] >= 11).all() and (rects[:, 2] < cols - 11).all() and (rects[:, 3] < rows - 11).all()


def test_preprocessing_follows_the_contract(detector):
    image = np.full((60, 50, 3), (200, 100, 0), np.uint8)
    contract = dataclasses.replace(detector.contract, channel_mean=(0.0, 0.0, 0.0), scale=1.0, pyramid_outer_padding=3)
    tensor, rects = build_pyramid_tensor(image, contract)
    assert rects[0].tolist() == [3, 3, 52, 62] and tensor.shape[3] == 50 + 6
    np.testing.assert_array_equal(tensor[0, :, 3, 3], [200, 100, 0])
    bgr, _ = build_pyramid_tensor(image, dataclasses.replace(contract, channel_order="BGR"))
    np.testing.assert_array_equal(bgr[0, :, 3, 3], [0, 100, 200])
    normal, _ = build_pyramid_tensor(image, detector.contract)
    expected = (np.float32([200, 100, 0]) - np.float32(detector.contract.channel_mean)) / 256
    np.testing.assert_array_equal(normal[0, :, 11, 11], expected)
    assert normal[0, :, 0, 0].tolist() == [0, 0, 0]  # padding is the mean colour


# --------------------------------------------------------------------------------------------
# Loading, edge cases and bad input


def test_contract_comes_from_metadata(detector):
    c = detector.contract
    assert (c.window, c.cell_stride, c.cell_offset, c.pyramid_downsample) == ((80, 80), 8, 14, 6)
    assert (c.pyramid_padding, c.pyramid_outer_padding, c.scale, c.score_threshold) == (10, 11, 1 / 256, 0.0)
    np.testing.assert_allclose(c.channel_mean, (122.782, 117.001, 104.298), atol=1e-4)


def test_from_engines_checks_the_manifest(engines_dir, detector, tmp_path):
    image = astronaut()
    from_engines = FaceDetector.from_engines(engines_dir)
    np.testing.assert_array_equal(from_engines.detect(image).boxes, detector.detect(image).boxes)
    copy = tmp_path / "engines"
    shutil.copytree(engines_dir / "face-detect", copy / "face-detect")
    with open(copy / "face-detect" / "fp32.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError, match="sha256 differs"):
        FaceDetector.from_engines(copy)
    with pytest.raises(ManifestError, match="no manifest"):
        FaceDetector.from_engines(tmp_path / "nowhere")


def test_an_embedding_model_is_not_a_detector(engines_dir):
    with pytest.raises(ModelFormatError, match="metadata lacks 'facestyle.pyramid_downsample'"):
        FaceDetector.from_onnx(engines_dir / "face-embed" / "fp32.onnx")


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_images_have_no_faces(detector, value):
    for upsample in (0, 1):
        found = detector.detect(np.full((120, 160, 3), value, np.uint8), upsample)
        assert len(found) == 0 and found.boxes.shape == (0, 4) and found.scores.shape == (0,)


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (10, 10), (3, 300), (300, 9), (40, 2), (79, 79)])
def test_tiny_images_give_nothing_without_error(detector, shape):
    # dlib itself fails on some of these (1x1, 5x5: filters larger than the image; narrow ones
    # get a degenerate tile layout); none is large enough to hold a face at upsample 0.
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert len(detector.detect(image)) == 0
    detector.detect(image, upsample=1)  # runs; may or may not find anything in noise


@pytest.mark.parametrize(
    "image, message",
    [
        (
            np.zeros((50, 50, 3), np.float32),
            r"expected uint8 \(H, W, 3\) RGB or \(H, W\) grey, got float32\[50, 50, 3\]",
        ),
        (np.zeros((50, 50, 4), np.uint8), r"got uint8\[50, 50, 4\] \(convert RGBA to RGB first\)"),
        (np.zeros((2, 50, 50, 3), np.uint8), r"got uint8\[2, 50, 50, 3\]"),
        (np.zeros((0, 50, 3), np.uint8), r"expected at least 1x1 pixels, got an empty \[0, 50, 3\] array"),
        ([[0, 1], [2, 3]], r"expected a numpy array, uint8 \(H, W, 3\) RGB or \(H, W\) grey, got list"),
    ],
)
def test_bad_images_are_rejected(detector, image, message):
    with pytest.raises(BadImageError, match=message):
        detector.detect(image)


@pytest.mark.parametrize("upsample", [-1, 1.5, True, "1"])
def test_bad_upsample_is_rejected(detector, upsample):
    with pytest.raises(BadInputError, match=r"upsample: expected an int >= 0"):
        detector.detect(np.zeros((50, 50, 3), np.uint8), upsample)


def test_nms_is_dlibs_greedy_test_box_overlap_on_random_boxes():
    from facestyle.face.detector import nms

    def overlaps(a, b, iou, covered):  # dlib's test_box_overlap, inclusive rects
        inner_w = min(a[2], b[2]) - max(a[0], b[0]) + 1
        inner_h = min(a[3], b[3]) - max(a[1], b[1]) + 1
        inner = max(inner_w, 0) * max(inner_h, 0)
        area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)
        outer = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
        return inner > 0 and (inner / outer > iou or inner / area(a) > covered or inner / area(b) > covered)

    rng = np.random.default_rng(0)
    for _ in range(20):
        corner = rng.integers(0, 200, (60, 2))
        boxes = np.concatenate([corner, corner + rng.integers(5, 80, (60, 2))], axis=1)
        kept = []
        for i, box in enumerate(boxes):
            if not any(overlaps(boxes[k], box, 0.5, 0.95) for k in kept):
                kept.append(i)
        np.testing.assert_array_equal(nms(boxes, 0.5, 0.95), kept)
    assert nms(np.zeros((0, 4), np.int64), 0.5, 0.95).tolist() == []
