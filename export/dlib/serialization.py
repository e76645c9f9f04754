"""Reader for dlib's binary serialization (dlib/serialize.h, dlib/cuda/tensor.h), numpy only.

dlib files have no header: they are a bare sequence of records, so the reader is driven by
what the caller expects next, and every mismatch is reported with the byte offset where
the unexpected record starts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from facestyle.errors import ModelFormatError

_FLOAT_SPECIALS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class DlibReader:
    """Sequential reader over the bytes of one dlib-serialized file."""

    def __init__(self, data: bytes, path: str | Path = "<bytes>"):
        self.data = memoryview(data)
        self.path = str(path)
        self.offset = 0

    @classmethod
    def from_file(cls, path: str | Path) -> DlibReader:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelFormatError(f"cannot read dlib model file ({exc.strerror})", path) from exc
        if not data:
            raise ModelFormatError("file is empty; expected a dlib-serialized model", path, 0)
        return cls(data, path)

    # -- errors ------------------------------------------------------------------------
    def error(self, message: str, offset: int | None = None) -> ModelFormatError:
        return ModelFormatError(message, self.path, self.offset if offset is None else offset)

    def _take(self, n: int, what: str) -> memoryview:
        if self.offset + n > len(self.data):
            raise self.error(
                f"file is truncated: {what} needs {n} bytes, {len(self.data) - self.offset} remain"
            )
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    # -- scalars -----------------------------------------------------------------------
    def int(self, what: str = "integer") -> int:
        start = self.offset
        control = self._take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.error(f"bad control byte 0x{control:02x} for {what}", start)
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def float(self, what: str = "float") -> float:
        start = self.offset
        if self.remaining and self.data[self.offset] & 0x70:
            raise self.error(f"{what} is in dlib's old ASCII float format, which is not supported", start)
        mantissa = self.int(what + " mantissa")
        exponent = self.int(what + " exponent")
        if exponent in _FLOAT_SPECIALS:
            return _FLOAT_SPECIALS[exponent]
        return math.ldexp(mantissa, exponent)

    def bool(self, what: str = "bool") -> bool:
        start = self.offset
        ch = bytes(self._take(1, what))
        if ch not in (b"0", b"1"):
            raise self.error(f"expected {what} as ASCII '0' or '1', found {ch!r}", start)
        return ch == b"1"

    def byte(self, what: str = "byte") -> int:
        """An ``unsigned char``/``uint8_t``: dlib writes those as one raw byte."""
        return self._take(1, what)[0]

    def string(self, what: str = "string") -> str:
        start = self.offset
        length = self.int(what + " length")
        if length < 0 or length > self.remaining:
            raise self.error(f"{what} length {length} is impossible here", start)
        raw = bytes(self._take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not ASCII text", start) from None

    def expect_string(self, *names: str) -> str:
        """Read a layer/record name and check it is one of ``names``."""
        start = self.offset
        name = self.string("record name")
        if name not in names:
            raise self.error(f"expected record {' or '.join(map(repr, names))}, found {name!r}", start)
        return name

    def expect_int(self, expected: int, what: str) -> int:
        start = self.offset
        value = self.int(what)
        if value != expected:
            raise self.error(f"expected {what} = {expected}, found {value}", start)
        return value

    # -- tensors -----------------------------------------------------------------------
    def tensor(self, what: str = "tensor") -> np.ndarray:
        """A ``resizable_tensor``: version 2, n, k, nr, nc, then little-endian float32 data."""
        self.expect_int(2, what + " version")
        start = self.offset
        shape = tuple(self.int(what + " shape") for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.error(f"{what} has a negative dimension {shape}", start)
        count = math.prod(shape)
        raw = self._take(4 * count, f"{what} data {shape}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self, what: str = "alias tensor") -> tuple[int, int, int, int]:
        """An ``alias_tensor``: version 1 and its 4-d shape, no data."""
        self.expect_int(1, what + " version")
        return tuple(self.int(what + " shape") for _ in range(4))

    def expect_end(self) -> None:
        if self.remaining:
            raise self.error(f"{self.remaining} unexpected bytes after the last record")
