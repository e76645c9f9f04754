"""The model kinds, as the runtime sees them: one entry per kind.

Each entry says what the runtime needs to run a model of that kind without guessing: its artifact,
its contract class, its runtime class, what its input looks like, and the shape ranges of its dynamic
axes (TensorRT optimisation profiles, Triton dims). Code that walks "all models" (backends, bench,
Triton export, the HTTP service) reads this table and never branches on a kind's name. How a kind is
*built* lives in the export side's table, ``facestyle.export.kinds``.

A model's kind travels with its artifact: the manifest's ``kind`` (older manifests: its contract's
``model``), the same value as the ONNX metadata ``facestyle.model``.

To add a model kind: an entry here and one in ``facestyle.export.kinds``, plus its own modules (a
contract in ``facestyle.contract``, a runtime class, a recipe in ``facestyle.export.recipes``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import BadInputError, ManifestError


def resolve(target: str):
    """``"package.module:attribute"`` -> the attribute, imported on first use (keeps this table light)."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class ModelKind:
    name: str
    input: str  # what its input looks like, for people and for generated configs
    artifact_suffix: str  # ".onnx", or ".npz" for the numpy landmarks
    base_precision: str  # the precision `facestyle build` writes first ("fp32"; "float32" for arrays)
    contract: str | None  # "module:Class" in facestyle.contract; None for a non-ONNX kind
    runtime: str  # "module:Class" with a from_engines loader
    axis_ranges: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)  # dynamic axis -> (min, opt, max)
    model_prefix: str | None = None  # a kind with one model per trained network: "style-<name>"
    precision_variants: bool = True  # fp16 / int8 variants apply
    bench_task: str | None = None  # its `facestyle bench --models` task

    def owns(self, model: str) -> bool:
        """Whether a model name (``face-embed``, ``style-starry_night``) is of this kind."""
        return model == self.name or (self.model_prefix is not None and model.startswith(self.model_prefix))

    def contract_class(self):
        return resolve(self.contract) if self.contract else None

    def runtime_class(self):
        return resolve(self.runtime)

    @property
    def max_batch(self) -> int:
        """The largest batch the kind's profiles take (1: one image at a time)."""
        return self.axis_ranges.get("batch", (1, 1, 1))[2]


KINDS: dict[str, ModelKind] = {k.name: k for k in (
    ModelKind(
        "face-embed", input="aligned 150x150 RGB face chips, NCHW float32, dlib's mean and scale",
        artifact_suffix=".onnx", base_precision="fp32",
        contract="facestyle.contract:EmbeddingContract", runtime="facestyle.face.embedder:FaceEmbedder",
        # Batches are formed by FaceEmbedder (max_batch 32 by default) and the micro-batcher.
        axis_ranges={"batch": (1, 8, 64)}, bench_task="embed",
    ),
    ModelKind(
        "face-detect", input="one tiled image pyramid, NCHW float32, any height and width",
        artifact_suffix=".onnx", base_precision="fp32",
        contract="facestyle.contract:DetectorContract", runtime="facestyle.face.detector:FaceDetector",
        axis_ranges={"batch": (1, 1, 1), "height": (64, 480, 2048), "width": (64, 640, 2048)}, bench_task="detect",
    ),
    ModelKind(
        "landmarks-5", input="an RGB uint8 image and face boxes (numpy regression trees, no ONNX)",
        artifact_suffix=".npz", base_precision="float32", contract=None,
        runtime="facestyle.face.landmarks:ShapePredictor", precision_variants=False,
    ),
    ModelKind(
        "style", input="one RGB photo, NCHW float32 0..255, any height and width",
        artifact_suffix=".onnx", base_precision="fp32",
        contract="facestyle.contract:StyleContract", runtime="facestyle.style.stylizer:Stylizer",
        axis_ranges={"batch": (1, 1, 1), "height": (64, 512, 1024), "width": (64, 512, 1024)},
        model_prefix="style-", bench_task="style",
    ),
)}


def kind_of_model(model: str) -> ModelKind:
    """The kind of a model name as `facestyle build` names them (``face-embed``, ``style-wave``)."""
    for kind in KINDS.values():
        if kind.owns(model):
            return kind
    raise BadInputError(f"model {model!r}: not of a known kind ({', '.join(KINDS)})")


def kind_of_manifest(manifest: Mapping, source: str = "manifest") -> ModelKind:
    """The kind an artifact's manifest records (``kind``; before that key, its contract's ``model``, or
    the kind of its model name)."""
    name = manifest.get("kind") or (manifest.get("contract") or {}).get("model")
    if name is None and isinstance(manifest.get("model"), str):
        try:
            return kind_of_model(manifest["model"])
        except BadInputError as exc:
            raise ManifestError(f"{source}: {exc}") from None
    if name not in KINDS:
        raise ManifestError(f"{source}: records model kind {name!r}, expected one of {', '.join(KINDS)}")
    return KINDS[name]
