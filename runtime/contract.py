"""Preprocessing contracts: what a model expects and returns, carried in ONNX ``metadata_props``.

The exporter writes a contract with :meth:`to_metadata`; the runtime reads it back with
:meth:`from_metadata`, so preprocessing is never guessed or hard-coded in the runtime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from .errors import ModelFormatError


@dataclass(frozen=True)
class EmbeddingContract:
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

    def to_metadata(self) -> dict[str, str]:
        """Every field as its own ``metadata_props`` entry, each value JSON-encoded."""
        return {f"facestyle.{k}": json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str = "model") -> "EmbeddingContract":
        values = {}
        for f in fields(cls):
            key = f"facestyle.{f.name}"
            if key not in metadata:
                raise ModelFormatError(
                    f"metadata lacks {key!r}: not a facestyle embedding model, or built by an older exporter",
                    source,
                )
            try:
                values[f.name] = json.loads(metadata[key])
            except json.JSONDecodeError:
                raise ModelFormatError(f"metadata {key!r} is not valid JSON: {metadata[key]!r}", source) from None
        values["input_size"] = tuple(values["input_size"])
        values["channel_mean"] = tuple(values["channel_mean"])
        contract = cls(**values)
        if contract.layout != "NCHW" or contract.channel_order not in ("RGB", "BGR"):
            raise ModelFormatError(
                f"unsupported layout/channel order {contract.layout}/{contract.channel_order}", source
            )
        return contract
