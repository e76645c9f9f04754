"""facestyle.face.align against dlib itself: every chip must be bit-identical to dlib.get_face_chip."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from conftest import FACES, require_shared
from facestyle.errors import BadImageError, BadInputError, FacestyleError
from facestyle.face.align import (
    ChipDetails,
    extract_face_chip,
    extract_face_chips,
    face_chip_details,
    pyramid_down,
)

# --------------------------------------------------------------------------------------------
# helpers and fixtures built once per test run


def landmarks_of(shape) -> np.ndarray:
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.int64)


def shape_from(dlib, points) -> object:
    """A dlib full_object_detection holding the given (5, 2) integer points."""
    pts = [dlib.point(int(x), int(y)) for x, y in points]
    return dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), pts)


def detections(dlib, shapes):
    """A dlib.full_object_detections list, what dlib.get_face_chips takes."""
    out = dlib.full_object_detections()
    for shape in shapes:
        out.append(shape)
    return out


def detect(dlib_models, image):
    """dlib's faces (HOG detector, upsample 0) -> list of (full_object_detection, (5, 2) landmarks)."""
    out = []
    for rect in dlib_models["detector"](image, 0):
        shape = dlib_models["shape5"](image, rect)
        out.append((shape, landmarks_of(shape)))
    return out


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8, (a.shape, a.dtype, b.shape, b.dtype)
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope="session")
def astronaut():
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    return load_image(skimage_data_dir() / "astronaut.png")


@pytest.fixture(scope="session")
def astronaut_face(dlib_models, astronaut):
    faces = detect(dlib_models, astronaut)
    assert len(faces) == 1, "dlib should find exactly Eileen Collins' face in skimage's astronaut"
    return faces[0]


def upscale(image: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour k-times upscale: big faces, and many flat 2x2 patches (a rounding trap)."""
    return np.ascontiguousarray(np.repeat(np.repeat(image, k, axis=0), k, axis=1))


@pytest.fixture(scope="session")
def shared_photos(dlib_models):
    """[(name, image, [(shape, landmarks)])] for every distinct photo under ../shared/data/faces."""
    from facestyle.images import load_image

    root = require_shared(FACES)
    seen, out = set(), []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        image = load_image(path)
        out.append((str(path.relative_to(root)), image, detect(dlib_models, image)))
    return out


def compare_all(dlib, cases) -> dict:
    """cases: (name, image, [(shape, landmarks)]) -> parity summary; fails on any differing chip."""
    chips = pyramid = deepest = 0
    failures = []
    for name, image, faces in cases:
        for i, (shape, points) in enumerate(faces):
            ref = dlib.get_face_chip(image, shape, size=150, padding=0.25)
            mine = extract_face_chip(image, points)
            levels = face_chip_details(points).pyramid_levels
            chips += 1
            pyramid += levels > 0
            deepest = max(deepest, levels)
            diff = max_diff(mine, ref)
            if diff:
                count = int((mine != ref).sum())
                failures.append(f"{name} face {i} (pyramid levels {levels}): max diff {diff}, {count} values")
    assert not failures, "chips differ from dlib.get_face_chip:\n" + "\n".join(failures)
    return {"chips": chips, "pyramid": pyramid, "deepest": deepest}


# --------------------------------------------------------------------------------------------
# parity on real photos


def test_real_photos_match_dlib_bit_exactly(dlib, shared_photos):
    summary = compare_all(dlib, shared_photos)
    print(f"\nshared photos: {len(shared_photos)} distinct, {summary}")
    assert summary["chips"] >= 30
    assert summary["pyramid"] >= 5, "some real faces should be large enough to go through pyramid_down"
    assert summary["chips"] - summary["pyramid"] >= 5
    assert summary["deepest"] >= 2, "a face over 4x the chip width should need two pyramid levels"


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_astronaut_and_upscales_match_dlib(dlib, dlib_models, astronaut, k):
    """Upscaled 3x and 5x the face certainly needs one and two pyramid levels; dlib sees the same."""
    image = upscale(astronaut, k)
    faces = detect(dlib_models, image)
    assert faces, f"dlib finds no face in the {k}x astronaut"
    summary = compare_all(dlib, [(f"astronaut x{k}", image, faces)])
    levels = max(face_chip_details(p).pyramid_levels for _, p in faces)
    assert levels == {1: 0, 2: 0, 3: 1, 5: 2}[k], levels
    print(f"\nastronaut x{k}: {summary}")


# --------------------------------------------------------------------------------------------
# faces at the border, other sizes, grey images, batches


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom", "corner"])
@pytest.mark.parametrize("k", [1, 3])
def test_face_cut_by_the_image_border(dlib, astronaut, astronaut_face, side, k):
    image = upscale(astronaut, k)
    points = astronaut_face[1] * k
    cx, cy = (int(v) for v in points.mean(axis=0))
    h, w = image.shape[:2]
    x0, y0, x1, y1 = {
        "left": (cx, 0, w, h),
        "right": (0, 0, cx, h),
        "top": (0, cy, w, h),
        "bottom": (0, 0, w, cy),
        "corner": (cx - 10 * k, cy - 5 * k, w, h),
    }[side]
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    moved = points - [x0, y0]
    ref = dlib.get_face_chip(crop, shape_from(dlib, moved), size=150, padding=0.25)
    mine = extract_face_chip(crop, moved)
    assert max_diff(mine, ref) == 0
    assert (mine.reshape(-1, 3) == 0).all(axis=1).mean() > 0.2, "a large part of the chip lies outside the image"
    assert face_chip_details(moved).pyramid_levels == (1 if k == 3 else 0)


def test_face_entirely_outside_gives_a_black_chip(dlib, astronaut, astronaut_face):
    moved = astronaut_face[1] + [2000, -1500]
    mine = extract_face_chip(astronaut, moved)
    assert max_diff(mine, dlib.get_face_chip(astronaut, shape_from(dlib, moved))) == 0
    assert not mine.any()


@pytest.mark.parametrize("size, padding", [(80, 0.25), (151, 0.25), (200, 0.0), (150, 0.2), (37, 0.6), (1, 0.25)])
@pytest.mark.parametrize("k", [1, 3])
def test_other_sizes_and_paddings(dlib, astronaut, astronaut_face, size, padding, k):
    image = upscale(astronaut, k)
    points = astronaut_face[1] * k
    ref = dlib.get_face_chip(image, shape_from(dlib, points), size=size, padding=padding)
    mine = extract_face_chip(image, points, size=size, padding=padding)
    assert mine.shape == (size, size, 3)
    assert max_diff(mine, ref) == 0


def test_grey_images(dlib, astronaut, astronaut_face):
    for k in (1, 3):
        grey = upscale(astronaut, k).mean(axis=2).astype(np.uint8)
        points = astronaut_face[1] * k
        ref = dlib.get_face_chip(grey, shape_from(dlib, points))
        mine = extract_face_chip(grey, points)
        assert mine.shape == (150, 150)
        assert max_diff(mine, ref) == 0


def test_random_similarity_landmarks_match_dlib(dlib, astronaut, astronaut_face):
    """Landmarks moved, turned (any angle) and scaled 0.3x-6x: chips and details stay bit-identical."""
    rng = np.random.default_rng(7)
    base = astronaut_face[1].astype(np.float64)
    centre = base.mean(axis=0)
    for trial in range(120):
        angle = rng.uniform(-np.pi, np.pi) if trial % 3 == 0 else rng.normal(0, 0.3)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = (base - centre) @ rot.T * rng.uniform(0.3, 6.0) + centre + rng.uniform(-200, 200, 2)
        points = np.round(points + rng.normal(0, 2, (5, 2))).astype(np.int64)
        shape = shape_from(dlib, points)
        mine = extract_face_chip(astronaut, points)
        assert max_diff(mine, dlib.get_face_chip(astronaut, shape)) == 0, (trial, points.tolist())
        ref, got = dlib.get_face_chip_details(shape, 150, 0.25), face_chip_details(points)
        r = ref.rect
        assert (r.left(), r.top(), r.right(), r.bottom(), ref.angle) == (*got.rect, got.angle), trial


def test_chip_details_match_dlib(dlib, astronaut_face):
    shape, points = astronaut_face
    for size, padding in [(150, 0.25), (200, 0.2), (151, 0.0)]:
        ref = dlib.get_face_chip_details(shape, size, padding)
        got = face_chip_details(points, size=size, padding=padding)
        assert isinstance(got, ChipDetails)
        r = ref.rect
        assert (r.left(), r.top(), r.right(), r.bottom()) == got.rect
        assert (ref.angle, ref.rows, ref.cols) == (got.angle, got.rows, got.cols)
        assert got.width == pytest.approx(size * got.scale)
    # the similarity transform maps the chip centre onto the rect centre, and the rect is upright
    # about it by -angle
    details = face_chip_details(points)
    m, b = details.transform[:, :2], details.transform[:, 2]
    np.testing.assert_allclose(m @ [75.0, 75.0] + b, details.center, atol=1e-9)
    assert np.arctan2(m[1, 0], m[0, 0]) == pytest.approx(details.angle)
    corners = details.corners()
    np.testing.assert_allclose(np.linalg.norm(corners[1] - corners[0]), details.width - 1, rtol=1e-12)


def test_batch_matches_single_chips_and_dlib(dlib, dlib_models, astronaut, astronaut_face):
    """extract_face_chips == per-face get_face_chip; shared_pyramid=True == dlib.get_face_chips."""
    image = upscale(astronaut, 3)
    real = astronaut_face[1] * 3
    # a second and third "face" (same landmarks, shifted by odd offsets, one of them smaller),
    # so the joint crop of get_face_chips starts elsewhere and pyramid levels differ per face
    points = np.stack([real, real + [301, 207], (real - real.mean(axis=0)) * 0.5 + [1100, 1200]]).astype(np.int64)
    shapes = [shape_from(dlib, p) for p in points]

    single = extract_face_chips(image, points)
    assert single.shape == (3, 150, 150, 3) and single.dtype == np.uint8
    for chip, shape in zip(single, shapes):
        assert max_diff(chip, dlib.get_face_chip(image, shape)) == 0

    shared = extract_face_chips(image, points, shared_pyramid=True)
    joint = dlib.get_face_chips(image, detections(dlib, shapes), size=150, padding=0.25)
    for chip, ref in zip(shared, joint):
        assert max_diff(chip, ref) == 0
    assert (shared != single).any(), "the joint pyramid should change the pyramid faces a little"

    assert extract_face_chips(image, np.zeros((0, 5, 2))).shape == (0, 150, 150, 3)


def test_batch_on_group_photos(dlib, shared_photos):
    groups = [(name, image, faces) for name, image, faces in shared_photos if len(faces) > 1]
    assert groups
    for name, image, faces in groups:
        points = np.stack([p for _, p in faces])
        single = extract_face_chips(image, points)
        shared = extract_face_chips(image, points, shared_pyramid=True)
        joint = dlib.get_face_chips(image, detections(dlib, [s for s, _ in faces]), size=150, padding=0.25)
        for i, (shape, _) in enumerate(faces):
            assert max_diff(single[i], dlib.get_face_chip(image, shape)) == 0, name
            assert max_diff(shared[i], joint[i]) == 0, name


def test_non_contiguous_views_are_accepted(astronaut, astronaut_face):
    points = astronaut_face[1]
    view = astronaut[::-1][::-1]  # a view with negative strides
    np.testing.assert_array_equal(extract_face_chip(view, points), extract_face_chip(astronaut, points))
    bgr_view = astronaut[..., ::-1]
    bgr_copy = astronaut[..., ::-1].copy()
    np.testing.assert_array_equal(extract_face_chip(bgr_view, points), extract_face_chip(bgr_copy, points))


# --------------------------------------------------------------------------------------------
# pyramid_down<2>


@pytest.mark.parametrize("shape", [(9, 9), (10, 11), (8, 30), (30, 8), (1, 1), (37, 64), (301, 452)])
def test_pyramid_down_matches_dlib(dlib, shape):
    rng = np.random.default_rng(sum(shape))
    pyr = dlib.pyramid_down(2)
    for image in (
        rng.integers(0, 256, shape + (3,), dtype=np.uint8),
        rng.integers(0, 256, shape, dtype=np.uint8),
        np.full(shape + (3,), 255, np.uint8),  # the largest sums: no 16-bit overflow
    ):
        ref = np.asarray(pyr(image))
        got = pyramid_down(image)
        expected = ((shape[0] - 3) // 2, (shape[1] - 3) // 2) if min(shape) > 8 else (0, 0)
        assert got.shape == ref.shape == expected + image.shape[2:]
        np.testing.assert_array_equal(got, ref)


# --------------------------------------------------------------------------------------------
# errors


GOOD_POINTS = np.array([[251, 105], [226, 105], [177, 104], [201, 106], [215, 140]])
GOOD_IMAGE = np.zeros((64, 64, 3), np.uint8)


@pytest.mark.parametrize(
    "image, error, match",
    [
        ([[0, 0, 0]], BadImageError, r"numpy array of shape \(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.float32), BadImageError, r"dtype uint8.*got float32"),
        (np.zeros((8, 8, 4), np.uint8), BadImageError, r"shape \(H, W, 3\).*got shape \(8, 8, 4\)"),
        (np.zeros((2, 8, 8, 3), np.uint8), BadImageError, r"shape \(H, W, 3\)"),
        (np.zeros((0, 8, 3), np.uint8), BadImageError, r"empty.*at least 1x1"),
    ],
)
def test_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        extract_face_chip(image, GOOD_POINTS)
    with pytest.raises(error, match=match):
        extract_face_chips(image, GOOD_POINTS[None])


@pytest.mark.parametrize(
    "points, match",
    [
        (np.zeros((68, 2)), r"shape \(5, 2\).*5-point shape predictor.*got shape \(68, 2\)"),
        (np.zeros((5, 3)), r"shape \(5, 2\)"),
        (np.zeros((1, 5, 2)), r"shape \(5, 2\)"),
        (np.full((5, 2), "a"), r"integer or float.*dtype <U1"),
        (np.ones((5, 2), bool), r"integer or float"),
        (np.where(np.eye(5, 2) > 0, np.nan, 1.0), r"finite"),
        (np.full((5, 2), 100), r"degenerate.*5 distinct points"),
        ([[1, 2], [3]], r"landmarks must"),
    ],
)
def test_bad_landmarks(points, match):
    with pytest.raises(BadInputError, match=match):
        extract_face_chip(GOOD_IMAGE, points)
    with pytest.raises(BadInputError, match=match):
        face_chip_details(points)


def test_bad_batch_landmarks():
    with pytest.raises(BadInputError, match=r"shape \(N, 5, 2\).*got shape \(5, 2\)"):
        extract_face_chips(GOOD_IMAGE, GOOD_POINTS)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 0}, r"size must be a positive integer.*got 0"),
        ({"size": -3}, r"size must be a positive integer"),
        ({"size": 150.0}, r"size must be a positive integer.*got 150.0"),
        ({"size": True}, r"size must be a positive integer"),
        ({"padding": -0.1}, r"padding must be a finite number >= 0.*got -0.1"),
        ({"padding": float("nan")}, r"padding must be a finite number >= 0"),
        ({"padding": "0.25"}, r"padding must be a number >= 0"),
    ],
)
def test_bad_size_and_padding(kwargs, match):
    with pytest.raises(BadInputError, match=match):
        extract_face_chip(GOOD_IMAGE, GOOD_POINTS, **kwargs)
    with pytest.raises(BadInputError, match=match):
        face_chip_details(GOOD_POINTS, **kwargs)


def test_errors_are_facestyle_value_errors():
    with pytest.raises(FacestyleError):
        extract_face_chip(GOOD_IMAGE.astype(np.int16), GOOD_POINTS)
    with pytest.raises(ValueError):
        extract_face_chip(GOOD_IMAGE, GOOD_POINTS[:4])
    with pytest.raises(BadImageError, match=r"uint8 numpy array of shape \(H, W\) or \(H, W, C\)"):
        pyramid_down(np.zeros((20, 20), np.float64))
