"""dlib's 5-point shape predictor: the file reader, the .npz, and landmarks identical to dlib's."""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import pytest

from conftest import FACES, require_shared
from facestyle.errors import BadImageError, BadInputError, ModelFormatError
from facestyle.export.dlib.serialization import DlibReader
from facestyle.export.dlib.shape_predictor import (
    NPZ_KEYS,
    ShapePredictorArrays,
    read_shape_predictor,
    save_shape_predictor_npz,
)
from facestyle.face.landmarks import ShapePredictor
from facestyle.images import load_image

# HOG detection at upsample 1 costs about 1 s per megapixel here (31 s for all the shared photos),
# so by default it runs on the photos up to this size; FACESTYLE_FULL_PARITY=1 runs it on all.
UPSAMPLE1_MAX_PIXELS = None if os.environ.get("FACESTYLE_FULL_PARITY") == "1" else 1_000_000


# --------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="session")
def shape5_bytes(model_files) -> bytes:
    return model_files["shape5"].read_bytes()


@pytest.fixture(scope="session")
def shape5_arrays(model_files) -> ShapePredictorArrays:
    return read_shape_predictor(model_files["shape5"])


@pytest.fixture(scope="session")
def shape5_npz(shape5_arrays, tmp_path_factory):
    return save_shape_predictor_npz(shape5_arrays, tmp_path_factory.mktemp("shape5") / "shape5.npz")


@pytest.fixture(scope="session")
def predictor(shape5_npz) -> ShapePredictor:
    return ShapePredictor.from_npz(shape5_npz)


@pytest.fixture(scope="session")
def astronaut():
    from facestyle.export.sample_inputs import skimage_data_dir

    return load_image(skimage_data_dir() / "astronaut.png")


@pytest.fixture(scope="session")
def shared_photos():
    """[(name, image)] for every distinct photo under ../shared/data/faces."""
    root = require_shared(FACES)
    seen, out = set(), []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append((str(path.relative_to(root)), load_image(path)))
    return out


def boxes_of(rects) -> np.ndarray:
    return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.int64).reshape(-1, 4)


def dlib_landmarks(dlib, shape5, image, boxes) -> np.ndarray:
    out = []
    for left, top, right, bottom in boxes.tolist():
        shape = shape5(image, dlib.rectangle(left, top, right, bottom))
        out.append([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)])
    return np.array(out, np.int64).reshape(-1, 5, 2)


def parity(dlib, dlib_models, predictor, image, boxes) -> int:
    """Max |ours - dlib| in pixels over all points of all boxes; also checks one-at-a-time = batched."""
    ours = predictor.predict(image, boxes)
    ref = dlib_landmarks(dlib, dlib_models["shape5"], image, boxes)
    assert ours.shape == ref.shape == (len(boxes), 5, 2) and ours.dtype == np.int64
    if len(boxes) > 1:
        alone = np.concatenate([predictor.predict(image, b[None]) for b in boxes[:8]])
        np.testing.assert_array_equal(alone, ours[:8])
    return int(np.abs(ours - ref).max(initial=0))


def dlib_int(value: int) -> bytes:
    size = max(1, (abs(value).bit_length() + 7) // 8)
    return bytes([size | (0x80 if value < 0 else 0)]) + abs(value).to_bytes(size, "little")


def dlib_float(value: float) -> bytes:
    mantissa, exponent = math.frexp(value)
    return dlib_int(int(mantissa * 2**24)) + dlib_int(exponent - 24)


def dlib_matrix(values) -> bytes:
    return dlib_int(-len(values)) + dlib_int(-1) + b"".join(dlib_float(v) for v in values)


def tiny_predictor_file(leaves_per_tree=(2, 2)) -> bytes:
    """A shape_predictor with 1 cascade of depth-1 trees over 2 parts and 3 feature pixels."""
    out = dlib_int(1) + dlib_matrix([0.25, 0.5, 0.75, 0.5]) + dlib_int(1) + dlib_int(len(leaves_per_tree))
    for leaves in leaves_per_tree:
        splits = leaves - 1
        out += dlib_int(splits) + (dlib_int(0) + dlib_int(2) + dlib_float(1.5)) * splits
        out += dlib_int(leaves) + dlib_matrix([0.125, -0.125, 0.0, 0.5]) * leaves
    out += dlib_int(1) + dlib_int(3) + dlib_int(0) + dlib_int(1) + dlib_int(1)
    out += dlib_int(1) + dlib_int(3) + b"".join(dlib_float(v) for v in (0.0, 0.125, -0.25, 0.5, 0.75, -1.0))
    return out


# --------------------------------------------------------------------------------------------
# reading dlib's file


def test_reads_the_whole_5_point_model(shape5_arrays):
    a = shape5_arrays
    assert a.version == 1
    assert (a.num_cascades, a.num_trees, a.num_parts, a.num_features) == (15, 500, 5, 800)
    assert a.initial_shape.shape == (5, 2) and a.initial_shape.dtype == np.float32
    assert a.split_idx1.shape == a.split_idx2.shape == a.split_thresh.shape == (15, 500, 15)
    assert a.leaf_values.shape == (15, 500, 16, 10) and a.leaf_values.dtype == np.float32
    assert a.anchor_idx.shape == (15, 800) and a.deltas.shape == (15, 800, 2)
    assert 0 <= a.split_idx1.min() and a.split_idx2.max() <= 799 and set(np.unique(a.anchor_idx)) <= set(range(5))
    # the mean face sits inside its unit box: eyes near the top third, nose tip lower
    assert (0 < a.initial_shape).all() and (a.initial_shape < 1).all()
    assert np.isfinite(a.split_thresh).all() and np.isfinite(a.leaf_values).all()


def test_header_values_match_a_plain_dlib_reader(model_files, shape5_arrays):
    reader = DlibReader.from_file(model_files["shape5"])
    assert reader.int() == 1 and reader.int() == -10 and reader.int() == -1
    initial = np.array([reader.float() for _ in range(10)], np.float32).reshape(5, 2)
    np.testing.assert_array_equal(initial, shape5_arrays.initial_shape)
    assert reader.int() == 15 and reader.int() == 500  # cascades, then trees of cascade 0
    assert reader.int() == 15  # splits of tree 0
    first_split = (reader.int(), reader.int(), np.float32(reader.float()))
    assert first_split == (
        shape5_arrays.split_idx1[0, 0, 0],
        shape5_arrays.split_idx2[0, 0, 0],
        shape5_arrays.split_thresh[0, 0, 0],
    )


def test_tiny_synthetic_file_parses(tmp_path):
    path = tmp_path / "tiny.dat"
    path.write_bytes(tiny_predictor_file())
    a = read_shape_predictor(path)
    np.testing.assert_array_equal(a.initial_shape, [[0.25, 0.5], [0.75, 0.5]])
    assert a.split_idx1.tolist() == [[[0], [0]]] and a.split_idx2.tolist() == [[[2], [2]]]
    assert a.split_thresh.tolist() == [[[1.5], [1.5]]] and a.leaf_values.shape == (1, 2, 2, 4)
    assert a.anchor_idx.tolist() == [[0, 1, 1]]
    np.testing.assert_array_equal(a.deltas, [[[0.0, 0.125], [-0.25, 0.5], [0.75, -1.0]]])


def test_truncated_file_names_the_byte_offset(shape5_bytes, tmp_path):
    for cut in (len(shape5_bytes) // 2, len(shape5_bytes) - 1, 5_000_001):
        path = tmp_path / f"cut{cut}.dat"
        path.write_bytes(shape5_bytes[:cut])
        with pytest.raises(ModelFormatError, match="truncated") as info:
            read_shape_predictor(path)
        # the cut integer starts within the last 9 bytes (a dlib integer is at most 9 bytes long)
        assert cut - 9 <= info.value.offset <= cut
        assert f"{path} at byte {info.value.offset}: file is truncated" in str(info.value)


def test_truncated_header(shape5_bytes, tmp_path):
    path = tmp_path / "one_byte.dat"
    path.write_bytes(shape5_bytes[:1])
    with pytest.raises(ModelFormatError, match=r"one_byte\.dat at byte 1: file is truncated"):
        read_shape_predictor(path)


def test_bad_control_byte_inside_the_forests(shape5_bytes, tmp_path):
    reader = DlibReader(shape5_bytes)
    reader.int(), reader.int(), reader.int(), [reader.float() for _ in range(10)]
    reader.int(), reader.int(), reader.int()  # cascade count, tree count, split count of tree 0
    offset = reader.offset  # the control byte of tree 0's first idx1, deep in the vectorised part
    corrupt = bytearray(shape5_bytes)
    corrupt[offset] = 0x70
    path = tmp_path / "corrupt.dat"
    path.write_bytes(bytes(corrupt))
    with pytest.raises(ModelFormatError, match=rf"at byte {offset}: bad control byte 0x70"):
        read_shape_predictor(path)


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"", r"file is empty"),
        (dlib_int(2), r"at byte 0: expected shape_predictor version = 1, found 2"),
        (
            dlib_int(1) + dlib_int(-3) + dlib_int(-1),
            r"at byte 2: initial_shape must be a column of 2\*parts floats, found 3x1",
        ),
        (tiny_predictor_file() + b"\x01\x00", r"unexpected bytes after the last record"),
        (tiny_predictor_file((2, 4)), r"cascade 0 tree 1 differs in size from tree 0"),
    ],
)
def test_wrong_files(tmp_path, raw, match):
    path = tmp_path / "wrong.dat"
    path.write_bytes(raw)
    with pytest.raises(ModelFormatError, match=match):
        read_shape_predictor(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot read dlib model file"):
        read_shape_predictor(tmp_path / "absent.dat")


# --------------------------------------------------------------------------------------------
# the .npz


def test_npz_holds_plain_arrays(shape5_npz, shape5_arrays):
    with np.load(shape5_npz, allow_pickle=False) as npz:
        assert set(npz.files) == {*NPZ_KEYS, "format_version", "dlib_version"}
        for key in NPZ_KEYS:
            np.testing.assert_array_equal(npz[key], getattr(shape5_arrays, key))
    assert [p.name for p in shape5_npz.parent.iterdir()] == [shape5_npz.name]  # no temp file left behind


def arrays_dict(arrays: ShapePredictorArrays) -> dict:
    return {key: getattr(arrays, key) for key in NPZ_KEYS}


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.pop("deltas"), r"it lacks deltas"),
        (lambda d: d.update(deltas=d["deltas"][:, :799]), r"deltas must have shape \(15, 800, 2\), got \(15, 799, 2\)"),
        (lambda d: d.update(leaf_values=d["leaf_values"][..., :8]), r"leaf_values must have shape"),
        (lambda d: d.update(split_idx1=d["split_idx1"] + 1), r"split_idx1 holds indices outside 0\.\.799"),
        (lambda d: d.update(anchor_idx=d["anchor_idx"] * 1.0), r"anchor_idx has dtype float64, expected integer"),
        (lambda d: d.update(deltas=np.array([None], object)), r"unreadable shape predictor \.npz"),
    ],
)
def test_npz_errors(shape5_arrays, tmp_path, change, match):
    arrays = arrays_dict(shape5_arrays)
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, format_version=np.array(1), **arrays)
    with pytest.raises(ModelFormatError, match=match):
        ShapePredictor.from_npz(path)


def test_npz_not_a_model(tmp_path):
    with pytest.raises(ModelFormatError, match="no such shape predictor file"):
        ShapePredictor.from_npz(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ModelFormatError, match=r"junk\.npz: unreadable shape predictor \.npz"):
        ShapePredictor.from_npz(junk)


# --------------------------------------------------------------------------------------------
# landmarks identical to dlib


def test_parity_on_shared_photos(dlib, dlib_models, predictor, shared_photos):
    checked, worst = {0: 0, 1: 0}, 0
    for name, image in shared_photos:
        for upsample in (0, 1):
            if upsample and UPSAMPLE1_MAX_PIXELS and image.shape[0] * image.shape[1] > UPSAMPLE1_MAX_PIXELS:
                continue
            boxes = boxes_of(dlib_models["detector"](image, upsample))
            diff = parity(dlib, dlib_models, predictor, image, boxes)
            assert diff == 0, f"{name} (upsample {upsample}): landmarks differ from dlib's by {diff} px"
            checked[upsample] += len(boxes)
            worst = max(worst, diff)
    print(f"\nshape predictor parity: {sum(checked.values())} faces (upsample 0: {checked[0]}, "
          f"upsample 1: {checked[1]}) in {len(shared_photos)} photos, max difference {worst} px")
    assert checked[0] >= 40


@pytest.mark.parametrize("upsample", [0, 1])
def test_parity_on_astronaut(dlib, dlib_models, predictor, astronaut, upsample):
    boxes = boxes_of(dlib_models["detector"](astronaut, upsample))
    assert len(boxes) >= 1  # Eileen Collins' face (at upsample 1 also a false positive)
    assert parity(dlib, dlib_models, predictor, astronaut, boxes) == 0


def test_parity_on_grey_images(dlib, dlib_models, predictor, astronaut):
    grey = np.ascontiguousarray(astronaut[..., 0])
    boxes = boxes_of(dlib_models["detector"](astronaut, 0))
    assert parity(dlib, dlib_models, predictor, grey, boxes) == 0


def test_parity_with_boxes_partly_outside_the_image(dlib, dlib_models, predictor, astronaut):
    h, w = astronaut.shape[:2]
    left, top, right, bottom = boxes_of(dlib_models["detector"](astronaut, 0))[0].tolist()
    size = right - left
    boxes = np.array(
        [
            [-size // 2, top, size // 2, bottom],  # across the left edge
            [left, -size // 3, right, size - size // 3],  # across the top edge
            [w - size // 2, top, w - size // 2 + size, bottom],  # across the right edge
            [left, h - size // 4, right, h - size // 4 + size],  # across the bottom edge
            [-size // 2, -size // 2, size // 2, size // 2],  # a corner
            [-50, -50, w + 50, h + 50],  # bigger than the image
            [w + 10, h + 10, w + 10 + size, h + 10 + size],  # wholly outside: every pixel reads 0
        ]
    )
    rng = np.random.default_rng(5)
    corner = rng.integers(-w // 2, w, (100, 2))
    sizes = rng.integers(1, w, (100, 1)) + rng.integers(-4, 5, (100, 2))  # roughly square, any size
    boxes = np.concatenate([boxes, np.concatenate([corner, corner + np.maximum(sizes, 0)], axis=1)])
    assert parity(dlib, dlib_models, predictor, astronaut, boxes) == 0


# --------------------------------------------------------------------------------------------
# inputs


def test_no_boxes_gives_no_points(predictor, astronaut):
    out = predictor.predict(astronaut, np.zeros((0, 4), np.int64))
    assert out.shape == (0, 5, 2) and out.dtype == np.int64


@pytest.mark.parametrize(
    "image, match",
    [
        (
            np.zeros((8, 8, 3), np.float32),
            r"image: expected \(H, W, 3\) uint8 RGB or \(H, W\) uint8 grey, got float32\[8, 8, 3\]",
        ),
        (np.zeros((8, 8, 4), np.uint8), r"got uint8\[8, 8, 4\]"),
        (np.zeros((2, 8, 8, 3), np.uint8), r"got uint8\[2, 8, 8, 3\]"),
        ([[0, 1], [2, 3]], r"image: expected a numpy array \(H, W, 3\) uint8 RGB, got list"),
    ],
)
def test_bad_images(predictor, image, match):
    with pytest.raises(BadImageError, match=match):
        predictor.predict(image, np.array([[0, 0, 4, 4]]))


@pytest.mark.parametrize(
    "boxes, match",
    [
        (np.array([0, 0, 4, 4]), r"boxes: expected an \(N, 4\) array of \[left, top, right, bottom\], got shape \[4\]"),
        (np.zeros((2, 5), np.int64), r"got shape \[2, 5\]"),
        (np.array([[0.0, 0.0, 4.5, 4.0]]), r"boxes: expected integer pixel coordinates .* got float64"),
    ],
)
def test_bad_boxes(predictor, astronaut, boxes, match):
    with pytest.raises(BadInputError, match=match):
        predictor.predict(astronaut, boxes)
