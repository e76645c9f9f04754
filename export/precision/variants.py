"""``build_variants``: ``engines/<model>/fp32.onnx`` -> ``engines/<model>/<precision>.onnx`` plus a
manifest holding the conversion or calibration and the figures measured against fp32.

The precisions are the derived rows of ``facestyle.capabilities.PRECISIONS``; per model kind, the
calibration reader, the nodes kept in float and the measurement come from the export kinds table
(``facestyle.export.kinds``), the kind from the fp32 manifest. Nothing here branches on a kind's name.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from facestyle.capabilities import PRECISIONS, PRECISION_NAMES
from facestyle.errors import BadInputError, ManifestError
from facestyle.kinds import kind_of_manifest
from facestyle.manifest import file_sha256, manifest_path, read_manifest, up_to_date, write_manifest

from ..datasets import default_data_dir, lfw_dir
from ..kinds import EXPORT_KINDS, ExportKind
from ..provenance import built_at, log, versions
from .fp16 import KEEP_FP32_OPS, fp16_from_onnx
from .int8 import INT8_FLAVOURS, calibration_record, quantise, weight_range_for

RECIPE_VERSION = 2  # bump when a conversion changes what it writes: rebuilds every variant (2: int8 weight range)


@dataclass
class VariantJob:
    """One precision variant of one fp32 artifact: what to build, from what, and where."""

    model: str
    kind: ExportKind
    engines_dir: Path
    fp32: Path
    fp32_manifest: dict
    precision: str
    method: str
    exclude_nodes: tuple[str, ...]
    calibration_count: int
    data_dir: Path
    weight_range: str = "auto"  # int8 only: facestyle.export.precision.int8.WEIGHT_RANGES

    @property
    def variant(self) -> Path:
        return self.fp32.with_name(f"{self.precision}.onnx")


def _versions() -> dict[str, str]:
    return versions("onnx", "onnxruntime", "onnxconverter-common")


def _fingerprint(job: VariantJob, reader) -> str:
    """Everything the variant depends on: any change rebuilds it."""
    data = ("caller's reader: " + reader.source if reader is not None
            else f"default data; LFW present: {lfw_dir(job.data_dir) is not None}")
    weights = weight_range_for(job.precision, job.weight_range) if PRECISIONS[job.precision].calibrated else None
    key = [RECIPE_VERSION, job.model, job.precision, job.fp32_manifest["artifact_sha256"], job.method,
           list(job.exclude_nodes), job.calibration_count, data, weights, _versions()]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


# -- one converter per derived precision: (job, reader or None) -> what the manifest records ----------
def _fp16_variant(job: VariantJob, reader) -> dict:
    fp16_from_onnx(job.fp32, job.variant)
    return {"conversion": {"kind": "float16 (onnxconverter-common)", "keep_fp32_ops": list(KEEP_FP32_OPS), "io_types": "float32"}}


def _int8_variant(job: VariantJob, reader) -> dict:
    reader = reader or job.kind.calibration_reader(job.fp32, job.engines_dir, job.calibration_count, job.data_dir)
    _, excluded = quantise(job.fp32, job.variant, reader, job.precision, job.method, job.exclude_nodes, job.weight_range)
    return {"calibration": calibration_record(reader, job.precision, job.method, excluded, job.weight_range)}


CONVERTERS = {"fp16": _fp16_variant, **{flavour: _int8_variant for flavour in INT8_FLAVOURS}}
if set(CONVERTERS) != {name for name, p in PRECISIONS.items() if p.derived}:  # every derived precision has one
    raise RuntimeError(f"precision converters {sorted(CONVERTERS)} != the derived precisions of facestyle.capabilities")


# -- build_variants ----------------------------------------------------------------------------
def _checked_fp32(engines_dir: Path, model_name: str, precisions) -> tuple[Path, dict]:
    fp32 = engines_dir / model_name / "fp32.onnx"
    if not fp32.is_file():
        raise ManifestError(f"{fp32}: no fp32 artifact to derive {', '.join(precisions)} from; run `facestyle build` first")
    fp32_manifest = read_manifest(manifest_path(fp32))
    if file_sha256(fp32) != fp32_manifest["artifact_sha256"]:
        raise ManifestError(f"{fp32}: sha256 differs from its manifest; run `facestyle build --force`")
    return fp32, fp32_manifest


def build_variants(
    engines_dir: str | Path,
    model_name: str,
    precisions: list[str] | tuple[str, ...],
    reader=None,
    *,
    method: str = "minmax",
    exclude_nodes: tuple[str, ...] | None = None,
    calibration_count: int = 256,
    data_dir: str | Path | None = None,
    measure: bool = True,
    force: bool = False,
    weight_range: str = "auto",
) -> list[dict]:
    """``engines/<model>/<precision>.onnx`` and its manifest for each of ``precisions``, from the built
    ``engines/<model>/fp32.onnx``. A variant whose fingerprint (fp32 sha256, recipe, calibration,
    versions) matches its manifest is left alone. ``reader``: calibration inputs (default: the kind's
    reader on the shared data). ``weight_range``: the int8 weights' range, ``auto``, ``full`` or
    ``reduced`` (:func:`~facestyle.export.precision.int8.weight_range_for`). Returns one row per
    precision: model, precision, status ("built", "up to date" or "source" for fp32), artifact,
    size_bytes, seconds, measured."""
    engines_dir = Path(engines_dir)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise BadInputError(f"precision: expected some of {', '.join(PRECISION_NAMES)}, got {', '.join(map(repr, unknown))}")
    weight_range_for("int8", weight_range)  # a wrong choice is refused before anything is built
    fp32, fp32_manifest = _checked_fp32(engines_dir, model_name, precisions)
    kind = EXPORT_KINDS[kind_of_manifest(fp32_manifest, str(manifest_path(fp32))).name]
    rows = []
    for precision in precisions:
        excludes = kind.default_excludes.get(precision, ()) if exclude_nodes is None else exclude_nodes
        job = VariantJob(model_name, kind, engines_dir, fp32, fp32_manifest, precision, method, tuple(excludes),
                         calibration_count, Path(data_dir) if data_dir else default_data_dir(), weight_range)
        rows.append(_build_one(job, reader, measure, force))
    return rows


def _build_one(job: VariantJob, reader, measure: bool, force: bool) -> dict:
    started = time.perf_counter()
    artifact = job.variant
    row = {"model": job.model, "precision": job.precision, "artifact": str(artifact)}
    if not PRECISIONS[job.precision].derived:
        return {**row, "status": "source", "size_bytes": job.fp32.stat().st_size, "seconds": 0.0, "measured": {}}
    fingerprint = _fingerprint(job, reader)
    if not force and (existing := up_to_date(artifact, fingerprint)):
        return {**row, "status": "up to date", "size_bytes": artifact.stat().st_size,
                "seconds": round(time.perf_counter() - started, 1), "measured": existing.get("measured", {})}
    log(f"[{job.model}] {job.precision}: converting {job.fp32}")
    try:
        recorded = CONVERTERS[job.precision](job, reader)
        measured, threshold = ({}, {})
        if measure:
            log(f"[{job.model}] {job.precision}: measuring against fp32")
            measured, threshold = job.kind.measure_variant(job)
    except BaseException:
        artifact.unlink(missing_ok=True)  # a variant without its manifest and figures is not kept
        raise
    _write_variant_manifest(job, fingerprint, recorded, measured, threshold)
    return {**row, "status": "built", "size_bytes": artifact.stat().st_size,
            "seconds": round(time.perf_counter() - started, 1), "measured": measured}


def _write_variant_manifest(job: VariantJob, fingerprint: str, recorded: dict, measured: dict, threshold: dict) -> None:
    source, artifact = job.fp32_manifest, job.variant
    copied = {k: source[k] for k in ("opset", "inputs", "outputs", "contract") if k in source}
    if not threshold and "threshold" in source:  # not re-derived: the fp32 threshold, said so
        threshold = {"threshold": source["threshold"],
                     "threshold_source": f"fp32's, not re-derived for {job.precision}: "
                                         f"{source.get('threshold_source', 'unspecified')}"}
    write_manifest(manifest_path(artifact), {
        "model": job.model,
        "kind": job.kind.name,
        "precision": job.precision,
        "artifact": artifact.name,
        "artifact_sha256": file_sha256(artifact),
        "fingerprint": fingerprint,
        "source": {"file": job.fp32.name, "sha256": source["artifact_sha256"], "model_source": source.get("source")},
        **copied,
        **threshold,
        **recorded,
        "measured": measured,
        "versions": _versions(),
        "built_at": built_at(),
    })
