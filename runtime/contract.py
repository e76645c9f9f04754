"""Preprocessing contracts: what a model expects and returns, carried in ONNX ``metadata_props``.

The exporter writes a contract with :meth:`to_metadata`; the runtime reads it back with
:meth:`from_metadata`, so preprocessing is never guessed or hard-coded in the runtime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from .errors import ModelFormatError


class _Contract:
    """Every field becomes its own ``metadata_props`` entry ``facestyle.<field>``, JSON-encoded."""

    def to_metadata(self) -> dict[str, str]:
        return {f"facestyle.{k}": json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str = "model"):
        values = {}
        for f in fields(cls):
            key = f"facestyle.{f.name}"
            if key not in metadata:
                raise ModelFormatError(
                    f"metadata lacks {key!r}: not a facestyle {cls.kind} model, or built by an older exporter", source
                )
            try:
                value = json.loads(metadata[key])
            except json.JSONDecodeError:
                raise ModelFormatError(f"metadata {key!r} is not valid JSON: {metadata[key]!r}", source) from None
            values[f.name] = tuple(value) if isinstance(value, list) else value
        contract = cls(**values)
        if contract.layout != "NCHW" or contract.channel_order not in ("RGB", "BGR"):
            raise ModelFormatError(f"unsupported layout/channel order {contract.layout}/{contract.channel_order}", source)
        if contract.model != cls.kind:
            raise ModelFormatError(f"this is a {contract.model!r} model, expected {cls.kind!r}", source)
        return contract


@dataclass(frozen=True)
class EmbeddingContract(_Contract):
    kind = "face-embed"

    model: str
    input_name: str
    output_name: str
    input_size: tuple[int, int]  # (height, width)
    layout: str  # "NCHW"
    channel_order: str  # "RGB"
    channel_mean: tuple[float, float, float]  # subtracted from 0..255 pixels, in channel_order
    scale: float  # multiplied after the mean is subtracted (dlib: 1/256)
    output_normalized: bool  # False: dlib's raw vectors, norms ~1.3-1.6
    distance: str  # "euclidean"
    threshold: float  # same person when distance <= threshold
    source_sha256: str


@dataclass(frozen=True)
class DetectorContract(_Contract):
    """dlib's MMOD detector: an image pyramid tiled into one tensor in, a score map out."""

    kind = "face-detect"

    model: str
    input_name: str
    output_name: str
    layout: str
    channel_order: str
    channel_mean: tuple[float, float, float]
    scale: float
    pyramid_downsample: int  # pyramid_down<N>: each level is (N-1)/N of the one before
    pyramid_padding: int  # zeros between tiled levels
    pyramid_outer_padding: int  # zeros around the whole tiled image
    window: tuple[int, int]  # (width, height) of the detection window, in tensor pixels
    cell_stride: int  # score cell (c, r) looks at tensor point (stride*c + offset, stride*r + offset)
    cell_offset: int
    score_threshold: float  # dlib's adjust_threshold: keep cells scoring above it
    nms_iou: float  # dlib test_box_overlap: drop a box overlapping a kept one beyond these
    nms_covered: float
    source_sha256: str


@dataclass(frozen=True)
class StyleContract(_Contract):
    """A feed-forward style network: an RGB photo in, the stylised photo out, at the input's size."""

    kind = "style"

    model: str
    style: str  # the style's name, e.g. "starry_night"
    variant: str  # a key of facestyle.export.style.transformer.SIZES: "edge2", "edge" or "standard"
    input_name: str
    output_name: str
    layout: str
    channel_order: str
    input_range: tuple[float, float]  # pixel values the network expects (no mean, no scaling outside)
    output_range: tuple[float, float]
    size_multiple: int  # the network pads internally to this multiple; any H x W comes back at its size
    card: dict  # how the weights were trained: style image, content, steps, resolution, losses, device
    source_sha256: str
