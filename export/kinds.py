"""The model kinds, as the export side builds them: one entry per kind of ``facestyle.kinds``.

Each entry names (as ``"module:function"``, imported on first use, so this table stays light):

- ``recipes``: ``() -> {model name: Recipe}``, the models of that kind `facestyle build` makes
  (one for a face model, one per shipped style);
- ``calibration``: ``(fp32_onnx, engines_dir, count, data_dir) -> CalibrationReader``, real inputs of
  that kind for int8 calibration;
- ``default_excludes``: per precision, the nodes kept in float (measured, see below);
- ``measure``: ``(VariantJob) -> (figures, threshold fields)``, a precision variant against its fp32.

Build, the precision variants and their measurement read this table; none branches on a kind's name.
To add a model kind: an entry here and in ``facestyle.kinds``, and its recipe module in ``recipes/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from facestyle.errors import BadInputError
from facestyle.kinds import KINDS, resolve


@dataclass(frozen=True)
class ExportKind:
    name: str
    recipes: str
    calibration: str | None = None
    measure: str | None = None
    # Nodes kept in float by default, per precision, as measured by benchmarks/precision_accuracy.py
    # with ``layer_sensitivity``. "@first" / "@last" name the first / last weighted layer (Conv, Gemm,
    # MatMul) of the quantisation-ready graph; other entries are node names.
    default_excludes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def model_recipes(self) -> dict:
        return resolve(self.recipes)()

    def calibration_reader(self, fp32, engines_dir, count: int, data_dir):
        if self.calibration is None:
            raise BadInputError(f"{self.name}: no calibration reader (its kind has no int8 variants)")
        return resolve(self.calibration)(fp32, engines_dir, count, data_dir)

    def measure_variant(self, job) -> tuple[dict, dict]:
        if self.measure is None:
            return {}, {}
        return resolve(self.measure)(job)


EXPORT_KINDS: dict[str, ExportKind] = {k.name: k for k in (
    ExportKind(
        "face-embed", recipes="facestyle.export.recipes.face:embed_recipes",
        calibration="facestyle.export.precision.readers:face_chip_calibration",
        measure="facestyle.export.precision.measure:measure_embed_variant",
        # On x86 CPUs without VNNI (AVX2 only) onnxruntime's u8s8 kernels add pairs of uint8 x int8
        # products in int16 with saturation: with full-range weights, this layer on raw normalised pixels
        # moved the astronaut's embedding by L2 0.21 instead of 0.04. There int8 uses 7-bit weights
        # (weight_range "auto"), which do not saturate, and keeping this layer in float then changes little
        # (median L2 to fp32 of 0.052-0.053 either way, 160 LFW DevTest chips, 2-core AMD EPYC). It stays
        # in float for full-range builds (one made on a VNNI CPU may run on an AVX2-only one), where it takes
        # the 0.21 above to 0.037.
        default_excludes={"int8": ("@first",)},
    ),
    ExportKind(
        "face-detect", recipes="facestyle.export.recipes.face:detect_recipes",
        calibration="facestyle.export.precision.readers:photo_calibration",
        measure="facestyle.export.precision.measure:measure_detect_variant",
        # The score map decides boxes near 0 and picks the pyramid level by the best score:
        # quantising the last (score) convolution moved or lost the astronaut's box.
        default_excludes={"int8": ("@first", "@last"), "int8-trt": ("@last",)},
    ),
    ExportKind("landmarks-5", recipes="facestyle.export.recipes.landmarks:landmarks_recipes"),
    ExportKind(
        "style", recipes="facestyle.export.recipes.style:style_recipes",
        calibration="facestyle.export.precision.readers:style_calibration",
        measure="facestyle.export.precision.measure:measure_style_variant",
    ),
)}

if set(EXPORT_KINDS) != set(KINDS):  # the two tables name the same kinds
    raise RuntimeError(f"facestyle.export.kinds {sorted(EXPORT_KINDS)} != facestyle.kinds {sorted(KINDS)}")


def export_kind_of_model(model: str) -> ExportKind:
    from facestyle.kinds import kind_of_model

    return EXPORT_KINDS[kind_of_model(model).name]
