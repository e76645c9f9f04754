"""Face landmarks with dlib's regression-tree shape predictor, in numpy, identical to dlib's points.

The arrays come from ``facestyle.export.dlib.shape_predictor`` (an .npz of plain arrays). Every step
follows dlib/image_processing/shape_predictor.h, including its number types: shapes and tree
leaves are float32, transforms are float64, pixel positions are rounded with floor(x + 0.5). Each
of these matters: a 1-ulp difference in a feature position moves a pixel, which flips a split,
which moves a landmark by pixels.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import BadImageError, BadInputError, ModelFormatError
from ..kinds import KINDS
from ..loading import find_built

MODEL_NAME = KINDS["landmarks-5"].name  # its folder in the engines directory
# One artifact and no precision variants: `facestyle build` writes model.npz and model.manifest.json.
ARTIFACT_STEM = "model"
NPZ_KEYS = ("initial_shape", "split_idx1", "split_idx2", "split_thresh", "leaf_values", "anchor_idx", "deltas")
NPZ_FORMAT_VERSION = 1


class ShapePredictor:
    """dlib's ``shape_predictor`` (e.g. the 5-point face model): image and face boxes in, points out.

    >>> predictor = ShapePredictor.from_npz("engines/landmarks-5/model.npz")
    >>> points = predictor.predict(rgb, boxes)   # (N, 4) [left, top, right, bottom] -> (N, 5, 2) int64
    """

    def __init__(
        self,
        initial_shape: np.ndarray,
        split_idx1: np.ndarray,
        split_idx2: np.ndarray,
        split_thresh: np.ndarray,
        leaf_values: np.ndarray,
        anchor_idx: np.ndarray,
        deltas: np.ndarray,
        source: str = "<arrays>",
    ):
        arrays = {
            "initial_shape": np.asarray(initial_shape),
            "split_idx1": np.asarray(split_idx1),
            "split_idx2": np.asarray(split_idx2),
            "split_thresh": np.asarray(split_thresh),
            "leaf_values": np.asarray(leaf_values),
            "anchor_idx": np.asarray(anchor_idx),
            "deltas": np.asarray(deltas),
        }
        _check_model(arrays, source)
        self.source = source
        self.initial_shape = arrays["initial_shape"].astype(np.float32)
        cascades, trees, splits = arrays["split_idx1"].shape
        self.num_parts = self.initial_shape.shape[0]
        self.depth = int(np.log2(splits + 1))
        self._splits = splits
        self.num_features = arrays["anchor_idx"].shape[1]
        # Flattened so that tree t's node k is entry t*splits + k (and its leaf j is t*leaves + j).
        self._idx1 = arrays["split_idx1"].astype(np.intp).reshape(cascades, -1)
        self._idx2 = arrays["split_idx2"].astype(np.intp).reshape(cascades, -1)
        self._thresh = arrays["split_thresh"].astype(np.float32).reshape(cascades, -1)
        self._leaves = arrays["leaf_values"].astype(np.float32).reshape(cascades, trees * (splits + 1), -1)
        self._tree_nodes = np.arange(trees) * splits
        self._tree_leaves = np.arange(trees) * (splits + 1)
        # Shapes are kept as (faces, 2*parts) rows of x0, y0, x1, y1, ... like dlib's column vector,
        # and every per-pixel array has the 800 feature pixels as its last, contiguous axis.
        self._anchor_x = 2 * arrays["anchor_idx"].astype(np.intp)
        self._anchor_y = self._anchor_x + 1
        self._dx = np.ascontiguousarray(arrays["deltas"][..., 0], np.float32)
        self._dy = np.ascontiguousarray(arrays["deltas"][..., 1], np.float32)
        self._from = _centred(self.initial_shape)
        if self._from[1] == 0:
            raise ModelFormatError("initial_shape has all its points at one place", source)

    @classmethod
    def from_engines(cls, engines_dir: str | Path | None = None) -> ShapePredictor:
        """Load the .npz that ``facestyle build`` wrote, checked against its manifest."""
        return cls.from_npz(find_built(engines_dir, MODEL_NAME, ARTIFACT_STEM).artifact)

    @classmethod
    def from_npz(cls, path: str | Path) -> ShapePredictor:
        """Load what ``facestyle.export.dlib.shape_predictor.save_shape_predictor_npz`` wrote."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in NPZ_KEYS if k not in npz.files]
                if missing:
                    raise ModelFormatError(
                        f"not a shape predictor .npz: it lacks {', '.join(missing)} (expected {', '.join(NPZ_KEYS)})",
                        path,
                    )
                version = int(npz["format_version"]) if "format_version" in npz.files else None
                if version != NPZ_FORMAT_VERSION:
                    raise ModelFormatError(
                        f"shape predictor .npz format_version {version}, this facestyle reads {NPZ_FORMAT_VERSION}",
                        path,
                    )
                arrays = {k: npz[k] for k in NPZ_KEYS}
        except FileNotFoundError:
            raise ModelFormatError("no such shape predictor file", path) from None
        except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            # not an npz, truncated, holds pickled objects, or a format_version that is no number
            raise ModelFormatError(f"unreadable shape predictor .npz ({exc})", path) from None
        return cls(**arrays, source=str(path))

    # -- prediction ---------------------------------------------------------------------------
    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Landmarks of each face box, exactly as ``dlib.shape_predictor(image, box).part(i)`` gives them.

        ``image``: (H, W, 3) uint8 RGB, or (H, W) uint8 grey. ``boxes``: (N, 4) integers
        [left, top, right, bottom], inclusive like dlib rectangles; they may extend past the image.
        Returns (N, parts, 2) int64 pixel coordinates (x, y). All faces are processed together.
        """
        image = _check_image(image)
        boxes = _check_boxes(boxes)
        if len(boxes) == 0:
            return np.zeros((0, self.num_parts, 2), np.int64)
        # dlib builds the box transform from corners converted to float, then solves it in double.
        corners = boxes.astype(np.float32).astype(np.float64)
        left, top, right, bottom = (corners[:, i : i + 1] for i in range(4))
        box = _Boxes(left, top, right - left, bottom - top)
        shape = np.repeat(self.initial_shape.reshape(1, -1), len(boxes), axis=0)
        for cascade in range(len(self._idx1)):
            values = self._feature_pixels(image, box, shape, cascade)
            shape = self._run_forest(values, shape, cascade)
        x, y = box.to_image(shape[:, 0::2], shape[:, 1::2])
        return np.stack([x, y], axis=-1)

    def _feature_pixels(self, image: np.ndarray, box: _Boxes, shape: np.ndarray, cascade: int) -> np.ndarray:
        """Grey values (N, F) float32 at the cascade's feature pixels, placed relative to ``shape``."""
        tform = _similarity(self._from, shape.reshape(len(shape), -1, 2)).astype(np.float32)
        dx, dy = self._dx[cascade], self._dy[cascade]
        # float32 throughout, as dlib's matrix<float,2,2> * vector<float,2> + vector<float,2>:
        # each coordinate is m[r,0]*dx + m[r,1]*dy, two rounded products and a rounded sum (no FMA).
        px = (tform[:, 0, 0, None] * dx + tform[:, 0, 1, None] * dy) + shape[:, self._anchor_x[cascade]]
        py = (tform[:, 1, 0, None] * dx + tform[:, 1, 1, None] * dy) + shape[:, self._anchor_y[cascade]]
        x, y = box.to_image(px, py)
        height, width = image.shape[:2]
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        x, y = np.where(inside, x, 0), np.where(inside, y, 0)
        if image.ndim == 3:  # dlib's rgb -> grey: the integer mean of the three channels
            grey = (image[y, x, 0].astype(np.uint16) + image[y, x, 1] + image[y, x, 2]) // 3
        else:
            grey = image[y, x]
        return np.where(inside, grey, 0).astype(np.float32)

    def _run_forest(self, values: np.ndarray, shape: np.ndarray, cascade: int) -> np.ndarray:
        """Walk all trees of a cascade for all faces at once, then add their leaves in dlib's order."""
        # Every split test of the cascade at once (7,500 for the 5-point model): the walk down
        # the trees then only looks up which way each visited node went.
        left = values[:, self._idx1[cascade]] - values[:, self._idx2[cascade]] > self._thresh[cascade]
        n, tests = left.shape
        tree_offsets = np.arange(n)[:, None] * tests + self._tree_nodes
        left = left.ravel()
        node = np.zeros((n, len(self._tree_nodes)), np.intp)
        for _ in range(self.depth):
            node = 2 * node + 2 - left[tree_offsets + node]
        leaves = self._leaves[cascade][(self._tree_leaves + node - self._splits).T]  # (trees, faces, 2*parts)
        # dlib adds the 500 leaf vectors one after another in float32; a pairwise sum (np.sum)
        # rounds differently and moves points by pixels, so accumulate strictly in tree order.
        steps = np.concatenate([shape[None], leaves], axis=0)
        return np.add.accumulate(steps, axis=0, dtype=np.float32)[-1]


class _Boxes:
    """dlib's unnormalizing_tform of each face box: (0, 0) -> top-left corner, (1, 1) -> bottom-right.

    dlib solves it with pinv in double, which gives exactly scale = right - left (bottom - top)
    and offset = left (top); numpy's pinv does not (148.49999999999994 for 148.5), so it is
    written out. Arrays are (N, 1) so they broadcast over (N, points).
    """

    def __init__(self, left: np.ndarray, top: np.ndarray, width: np.ndarray, height: np.ndarray):
        self.left, self.top, self.width, self.height = left, top, width, height

    def to_image(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 box-normalised points -> integer pixels, computed in double as dlib does."""
        return (
            _round_half_up(x.astype(np.float64) * self.width + self.left),
            _round_half_up(y.astype(np.float64) * self.height + self.top),
        )


# -- dlib's geometry -------------------------------------------------------------------------
def _round_half_up(values: np.ndarray) -> np.ndarray:
    """dlib's double -> integer point conversion: floor(x + 0.5), not banker's rounding."""
    return np.floor(values + 0.5).astype(np.int64)


def _sum_in_order(values: np.ndarray) -> np.ndarray:
    """Sum over the points axis (-3 of [..., points, a, b]) left to right, as dlib's loops do."""
    return np.add.accumulate(values, axis=-3)[..., -1, :, :]


def _centred(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (..., P, 2) minus their mean, and their mean squared distance from it, in float64."""
    points = np.asarray(points, np.float64)
    count = points.shape[-2]
    mean = _sum_in_order(points[..., None]) / count  # (..., 2, 1)
    centred = points - mean[..., :, 0][..., None, :]
    squares = centred[..., 0] * centred[..., 0] + centred[..., 1] * centred[..., 1]
    return centred, _sum_in_order(squares[..., None, None])[..., 0, 0] / count


def _similarity(source: tuple[np.ndarray, np.ndarray], to_points: np.ndarray) -> np.ndarray:
    """The 2x2 part of dlib's find_similarity_transform (Umeyama) from one shape to each of N shapes.

    dlib takes the SVD of the 2x2 covariance; for 2x2 its rotation and scale have a closed form
    (the similarity and anti-similarity parts of the covariance), which is also what the SVD
    computes, to the last bits of a double that the cast to float32 then drops.
    """
    from_centred, sigma_from = source
    to_centred, _ = _centred(to_points)
    cov = _sum_in_order(to_centred[..., :, None] * from_centred[:, None, :]) / from_centred.shape[0]
    c00, c01, c10, c11 = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 0], cov[:, 1, 1]
    p, q = c00 + c11, c10 - c01
    rotation = np.stack([p, -q, q, p], -1).reshape(-1, 2, 2) / sigma_from
    det = c00 * c11 - c01 * c10
    if not (det < 0).any():
        return rotation
    # A mirrored shape: dlib's SVD then picks the best reflection, scaled by the same trace.
    pr, qr = c00 - c11, c10 + c01
    scale = np.hypot(p, q) / (np.maximum(np.hypot(pr, qr), np.finfo(np.float64).tiny) * sigma_from)
    reflection = np.stack([pr, qr, qr, -pr], -1).reshape(-1, 2, 2) * scale[:, None, None]
    return np.where((det < 0)[:, None, None], reflection, rotation)


# -- validation ------------------------------------------------------------------------------
def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise BadImageError(f"image: expected a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise BadImageError(
            f"image: expected (H, W, 3) uint8 RGB or (H, W) uint8 grey, got {image.dtype}{list(image.shape)}"
        )
    return image


def _check_boxes(boxes) -> np.ndarray:
    array = np.asarray(boxes)
    if array.ndim != 2 or array.shape[1] != 4:
        raise BadInputError(
            f"boxes: expected an (N, 4) array of [left, top, right, bottom], got shape {list(array.shape)}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise BadInputError(
            f"boxes: expected integer pixel coordinates (dlib rectangles are integers), got {array.dtype}"
        )
    return array.astype(np.int64)


def _check_model(arrays: dict, source: str) -> None:
    """Shapes and index ranges, so that a damaged file fails here and not as an IndexError later."""
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    init = shapes["initial_shape"]
    if len(init) != 2 or init[1] != 2 or init[0] == 0:
        raise ModelFormatError(f"initial_shape must be (parts, 2), got {init}", source)
    parts = init[0]
    split = shapes["split_idx1"]
    if len(split) != 3 or 0 in split:
        raise ModelFormatError(f"split_idx1 must be (cascades, trees, splits), got {split}", source)
    cascades, trees, splits = split
    if (splits + 1) & splits:
        raise ModelFormatError(f"trees must be complete (2**depth - 1 splits), got {splits} splits", source)
    features = shapes["anchor_idx"][1] if len(shapes["anchor_idx"]) == 2 else -1
    expected = {
        "split_idx2": split,
        "split_thresh": split,
        "leaf_values": (cascades, trees, splits + 1, 2 * parts),
        "anchor_idx": (cascades, features),
        "deltas": (cascades, features, 2),
    }
    for key, want in expected.items():
        if shapes[key] != want or features <= 0:
            raise ModelFormatError(f"{key} must have shape {want}, got {shapes[key]}", source)
    kinds = {"split_idx1": "iu", "split_idx2": "iu", "anchor_idx": "iu"}
    for key, value in arrays.items():
        if np.asarray(value).dtype.kind not in kinds.get(key, "f"):
            want = "integer" if key in kinds else "float"
            raise ModelFormatError(f"{key} has dtype {np.asarray(value).dtype}, expected {want}", source)
    for key, limit in (("split_idx1", features), ("split_idx2", features), ("anchor_idx", parts)):
        value = np.asarray(arrays[key])
        if value.min() < 0 or value.max() >= limit:
            raise ModelFormatError(f"{key} holds indices outside 0..{limit - 1}", source)
