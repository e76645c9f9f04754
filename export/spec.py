"""Declarative model specs (after huggingface optimum's export configs).

One small record per model: its I/O names and shapes (a string dimension is dynamic), the opset,
the parity tolerances. Export, validation, metadata and the manifest all read it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # str = a named dynamic axis
    dtype: str = "float32"

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
    atol: float
    rtol: float
    recipe: int = 1  # bump when the export recipe changes, so `facestyle build` rebuilds

    def fingerprint(self, source_sha256: str) -> str:
        """Identifies what a build produces: the spec and the source weights."""
        payload = json.dumps({"spec": asdict(self), "source": source_sha256}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


FACE_EMBED = ModelSpec(
    name="face-embed",
    inputs=(TensorSpec("chips", ("batch", 3, 150, 150)),),
    outputs=(TensorSpec("embeddings", ("batch", 128)),),
    opset=18,  # the dynamo exporter emits opset 18 for the zero-padding Pad
    atol=1e-5,
    rtol=0.0,
)

FACE_DETECT = ModelSpec(
    name="face-detect",
    inputs=(TensorSpec("image", ("batch", 3, "height", "width")),),
    outputs=(TensorSpec("scores", ("batch", 1, "rows", "cols")),),
    opset=18,
    atol=1e-4,  # scores are of order 1-10; ORT and torch convolutions differ by ~1e-5 on big images
    rtol=0.0,
    recipe=2,  # 2: the score convolution as taps (models.face_detector.TapSumConv)
)

STYLE_TRANSFORMER = ModelSpec(
    name="style",
    inputs=(TensorSpec("image", ("batch", 3, "height", "width")),),  # RGB 0..255, any height and width
    outputs=(TensorSpec("stylized", ("batch", 3, "height", "width")),),  # RGB 0..255, the input's size
    opset=18,
    atol=1e-2,  # on the 0..255 scale; InstanceNorm statistics differ in the last bits between runtimes
    rtol=0.0,
)
