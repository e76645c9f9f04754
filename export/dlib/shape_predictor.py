"""Reader for dlib's ``shape_predictor`` files (dlib/image_processing/shape_predictor.h), numpy only.

Layout, as dlib's ``serialize(shape_predictor)`` writes it::

    int version (1)
    matrix<float,0,1> initial_shape        -rows, -cols, then rows*cols floats
    vector<vector<regression_tree>> forests
        regression_tree = vector<split_feature> splits   (idx1, idx2: unsigned long; thresh: float)
                          vector<matrix<float,0,1>> leaf_values
    vector<vector<unsigned long>> anchor_idx
    vector<vector<vector<float,2>>> deltas   (x, y floats)

A dlib float is two dlib integers (mantissa, exponent), so past the version every record is a
run of variable-length integers: about 3.4 million of them in the 9 MB 5-point model. Reading
them one at a time in Python takes seconds, so the token boundaries are found with vectorised
pointer doubling and all values are decoded at once; ``DlibReader`` still reads the header and
builds every error, so messages name the file and the byte offset either way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facestyle.errors import ModelFormatError
from facestyle.face.landmarks import NPZ_FORMAT_VERSION, NPZ_KEYS
from facestyle.manifest import atomic_write_bytes

from .serialization import DlibReader

SHAPE_PREDICTOR_VERSION = 1
_SIZE_MASKS = np.array([0] + [(1 << (8 * k)) - 1 for k in range(1, 9)], np.uint64)


@dataclass(frozen=True)
class ShapePredictorArrays:
    """A whole shape predictor as fixed-shape arrays (C cascades, T trees, S splits, P parts, F pixels)."""

    version: int
    initial_shape: np.ndarray  # (P, 2) float32, in box-normalised coordinates
    split_idx1: np.ndarray  # (C, T, S) int32, index into the cascade's feature pixels
    split_idx2: np.ndarray  # (C, T, S) int32
    split_thresh: np.ndarray  # (C, T, S) float32
    leaf_values: np.ndarray  # (C, T, S + 1, 2P) float32, shape increments (x0, y0, x1, y1, ...)
    anchor_idx: np.ndarray  # (C, F) int32, which part each feature pixel is anchored to
    deltas: np.ndarray  # (C, F, 2) float32, offset from that part in the initial shape's frame

    @property
    def num_cascades(self) -> int:
        return self.split_idx1.shape[0]

    @property
    def num_trees(self) -> int:
        return self.split_idx1.shape[1]

    @property
    def num_parts(self) -> int:
        return self.initial_shape.shape[0]

    @property
    def num_features(self) -> int:
        return self.anchor_idx.shape[1]


# -- tokenising ---------------------------------------------------------------------------
def _token_starts(data: np.ndarray, start: int, levels: int = 4) -> tuple[np.ndarray, bool]:
    """Offsets of the dlib integers that follow one another from ``start`` to the end of ``data``.

    Each byte, read as a control byte, says where the next integer would begin. Composing that
    map with itself ``levels`` times gives a jump over 2**levels integers, so the scalar walk along
    the chain is 2**levels times shorter, and the integers in between are then filled in for all
    jumps at once. Returns the offsets and whether the last integer runs past the end of the data.
    """
    n = len(data)
    at_end, past_end = n, n + 1  # absorbing states
    step = np.empty(n + 2, np.int32 if n < 2**30 else np.int64)
    step[:n] = np.minimum(np.arange(1, n + 1, dtype=step.dtype) + (data & 0x0F), past_end)
    step[at_end], step[past_end] = at_end, past_end
    jump = step
    for _ in range(levels):
        jump = jump[jump]
    hop = memoryview(jump)  # indexing a memoryview yields plain ints: much faster than numpy scalars
    waypoints = [start]
    while waypoints[-1] < n:
        waypoints.append(hop[waypoints[-1]])
    chain = np.empty((len(waypoints), 1 << levels), step.dtype)
    chain[:, 0] = waypoints
    for k in range(1, chain.shape[1]):
        chain[:, k] = step[chain[:, k - 1]]
    chain = chain.ravel()  # row-major order is chain order
    return chain[chain < n], bool(chain[-1] == past_end)


class _Tokens:
    """The integers after the header, decoded at once, handed out in order to the parser."""

    def __init__(self, reader: DlibReader, start: int):
        self.reader = reader
        data = np.frombuffer(reader.data, np.uint8)
        starts, overruns = _token_starts(data, start)
        control = data[starts]
        size = (control & 0x0F).astype(np.int64)
        bad = np.flatnonzero((size == 0) | (size > 8) | (control & 0x70 != 0))
        valid = int(bad[0]) if bad.size else len(starts) - int(overruns)
        self._all_starts = starts
        self.starts, control, size = starts[:valid], control[:valid], size[:valid]
        # Why the integers stop (or None: the file ends cleanly after the last one).
        self.stop: ModelFormatError | None = None
        if valid < len(starts):
            offset = int(starts[valid])
            if bad.size:
                self.stop = reader.error(f"bad control byte 0x{data[offset]:02x}", offset)
            else:
                need = int(data[offset] & 0x0F)
                self.stop = reader.error(
                    f"file is truncated: an integer needs {need} bytes, {len(data) - offset - 1} remain", offset + 1
                )
        padded = np.concatenate([data, np.zeros(8, np.uint8)])
        # Every byte offset viewed as the start of a little-endian 8-byte word: one gather reads a
        # whole integer, and the bytes past its size are masked off.
        words = np.ndarray((len(data),), "<u8", padded, strides=(1,))
        magnitude = words[self.starts + 1] & _SIZE_MASKS[size]
        huge = np.flatnonzero(magnitude >= np.uint64(2**63))
        if huge.size:
            raise reader.error("integer does not fit in 63 bits", int(self.starts[huge[0]]))
        self.values = np.where(control & 0x80 != 0, -magnitude.astype(np.int64), magnitude.astype(np.int64))
        self.pos = 0

    def offset(self, index: int | None = None) -> int:
        index = self.pos if index is None else index
        if index < len(self._all_starts):
            return int(self._all_starts[index])
        return len(self.reader.data)

    def take(self, count: int, what: str) -> np.ndarray:
        if self.pos + count > len(self.values):
            if self.stop is not None:
                raise self.stop
            end = len(self.reader.data)
            raise self.reader.error(f"file is truncated: {what} needs more data, the file ends here", end)
        out = self.values[self.pos : self.pos + count]
        self.pos += count
        return out

    def int(self, what: str) -> int:
        return int(self.take(1, what)[0])

    def count(self, what: str, expected: int | None = None, limit: int = 1 << 24) -> int:
        start = self.offset()
        value = self.int(what)
        if expected is not None and value != expected:
            raise self.reader.error(f"expected {what} = {expected}, found {value}", start)
        if not 0 <= value <= limit:
            raise self.reader.error(f"{what} = {value} is impossible here", start)
        return value

    def floats(self, count: int, what: str) -> np.ndarray:
        pairs = self.take(2 * count, what).reshape(count, 2)
        return _floats(pairs[:, 0], pairs[:, 1])

    def expect_end(self) -> None:
        if self.pos < len(self.values) or self.stop is not None:
            raise self.reader.error("unexpected bytes after the last record", self.offset())


def _floats(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """dlib's float_details -> float32, as ``std::ldexp((float)mantissa, exponent)`` does."""
    exponent = np.asarray(exponent)
    finite = exponent < 32000
    out = np.ldexp(mantissa.astype(np.float64), np.where(finite, exponent, 0).astype(np.int32)).astype(np.float32)
    out[exponent >= 32002] = np.nan  # dlib reads every exponent past -inf's code as NaN
    out[exponent == 32000] = np.inf
    out[exponent == 32001] = -np.inf
    return out


# -- records --------------------------------------------------------------------------------
def _read_initial_shape(reader: DlibReader) -> np.ndarray:
    start = reader.offset
    rows, cols = abs(reader.int("initial_shape rows")), abs(reader.int("initial_shape columns"))
    if cols != 1 or rows == 0 or rows % 2:
        raise reader.error(f"initial_shape must be a column of 2*parts floats, found {rows}x{cols}", start)
    values = [reader.float("initial_shape value") for _ in range(rows)]
    return np.asarray(values, np.float32).reshape(-1, 2)


def _read_forest(tokens: _Tokens, cascade: int, num_trees: int) -> tuple[np.ndarray, ...]:
    """One cascade's trees, read as a (trees, tokens per tree) block: all trees must share one shape."""
    where = f"cascade {cascade}"
    base = tokens.pos
    if num_trees == 0:
        raise tokens.reader.error(f"{where} has no trees; not supported", tokens.offset())
    num_splits = tokens.count(f"{where} tree 0 split count")
    tokens.take(4 * num_splits, f"{where} tree 0 splits")
    num_leaves = tokens.count(f"{where} tree 0 leaf count", expected=num_splits + 1)
    rows, cols = (abs(v) for v in tokens.take(2, f"{where} tree 0 leaf size"))
    if cols != 1:
        raise tokens.reader.error(
            f"{where} tree 0 leaf is a {rows}x{cols} matrix, expected a column", tokens.offset(tokens.pos - 2)
        )
    tokens.pos = base
    leaf_len = 2 + 2 * rows
    tree_len = 2 + 4 * num_splits + num_leaves * leaf_len
    block = tokens.take(num_trees * tree_len, f"{where}'s {num_trees} trees").reshape(num_trees, tree_len)
    splits = block[:, 1 : 1 + 4 * num_splits].reshape(num_trees, num_splits, 4)
    leaves = block[:, 2 + 4 * num_splits :].reshape(num_trees, num_leaves, leaf_len)
    layout_ok = (
        (block[:, 0] == num_splits)
        & (block[:, 1 + 4 * num_splits] == num_leaves)
        & (np.abs(leaves[:, :, 0]) == rows).all(axis=1)
        & (np.abs(leaves[:, :, 1]) == 1).all(axis=1)
    )
    if not layout_ok.all():
        tree = int(np.flatnonzero(~layout_ok)[0])
        raise tokens.reader.error(
            f"{where} tree {tree} differs in size from tree 0 ({num_splits} splits, {num_leaves} leaves of "
            f"{rows} values); only forests of equal, complete trees are supported",
            tokens.offset(base + tree * tree_len),
        )
    thresh = _floats(splits[:, :, 2], splits[:, :, 3])
    leaf_values = _floats(leaves[:, :, 2::2], leaves[:, :, 3::2])
    return splits[:, :, 0], splits[:, :, 1], thresh, leaf_values


def read_shape_predictor(path: str | Path) -> ShapePredictorArrays:
    """Parse a whole dlib ``shape_predictor`` file; ModelFormatError (file, byte offset) if it is not one."""
    reader = DlibReader.from_file(path)
    reader.expect_int(SHAPE_PREDICTOR_VERSION, "shape_predictor version")
    initial_shape = _read_initial_shape(reader)
    tokens = _Tokens(reader, reader.offset)

    start = tokens.offset()
    num_cascades = tokens.count("number of cascades")
    if num_cascades == 0:
        raise reader.error("the shape predictor has no cascades", start)
    forests = []
    for c in range(num_cascades):
        forests.append(_read_forest(tokens, c, tokens.count(f"cascade {c} tree count")))
    split_shapes = {f[0].shape for f in forests}
    leaf_shapes = {f[3].shape for f in forests}
    if len(split_shapes) > 1 or len(leaf_shapes) > 1:
        raise ModelFormatError(
            f"cascades differ in tree count or depth ({sorted(split_shapes)}); not supported", reader.path
        )

    anchors = []
    tokens.count("anchor_idx cascade count", expected=num_cascades)
    for c in range(num_cascades):
        anchors.append(tokens.take(tokens.count(f"cascade {c} anchor count"), f"cascade {c} anchor_idx"))
    deltas = []
    tokens.count("deltas cascade count", expected=num_cascades)
    for c in range(num_cascades):
        count = tokens.count(f"cascade {c} delta count", expected=len(anchors[c]))
        deltas.append(tokens.floats(2 * count, f"cascade {c} deltas").reshape(count, 2))
    tokens.expect_end()
    if len({len(a) for a in anchors}) > 1:
        raise ModelFormatError("cascades have different numbers of feature pixels; not supported", reader.path)

    arrays = ShapePredictorArrays(
        version=SHAPE_PREDICTOR_VERSION,
        initial_shape=initial_shape,
        split_idx1=np.stack([f[0] for f in forests]).astype(np.int32),
        split_idx2=np.stack([f[1] for f in forests]).astype(np.int32),
        split_thresh=np.stack([f[2] for f in forests]),
        leaf_values=np.stack([f[3] for f in forests]),
        anchor_idx=np.stack(anchors).astype(np.int32),
        deltas=np.stack(deltas),
    )
    _check_indices(arrays, reader)
    return arrays


def _check_indices(arrays: ShapePredictorArrays, reader: DlibReader) -> None:
    """Indices dlib would trust blindly: out of range here means a corrupt file, not a crash later."""
    features, parts = arrays.num_features, arrays.num_parts
    if arrays.leaf_values.shape[-1] != 2 * parts:
        raise ModelFormatError(
            f"leaf vectors hold {arrays.leaf_values.shape[-1]} values, the shape has {parts} parts", reader.path
        )
    for name in ("split_idx1", "split_idx2"):
        idx = getattr(arrays, name)
        if idx.size and (idx.min() < 0 or idx.max() >= features):
            raise ModelFormatError(f"{name} refers to feature pixels outside 0..{features - 1}", reader.path)
    if arrays.anchor_idx.size and (arrays.anchor_idx.min() < 0 or arrays.anchor_idx.max() >= parts):
        raise ModelFormatError(f"anchor_idx refers to parts outside 0..{parts - 1}", reader.path)


# -- npz ------------------------------------------------------------------------------------
def save_shape_predictor_npz(arrays: ShapePredictorArrays, path: str | Path) -> Path:
    """Write plain arrays (no pickle) that ``facestyle.face.landmarks.ShapePredictor.from_npz`` loads; atomic."""
    path = Path(path)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        format_version=np.array(NPZ_FORMAT_VERSION, np.int32),
        dlib_version=np.array(arrays.version, np.int32),
        **{key: np.ascontiguousarray(getattr(arrays, key)) for key in NPZ_KEYS},
    )
    atomic_write_bytes(path, buffer.getvalue())
    return path
