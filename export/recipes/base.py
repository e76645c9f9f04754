"""What every recipe shares: the result row, and the ONNX pipeline (prepare -> export -> validate -> manifest).

A recipe is an object with ``name``, ``source_option`` (the ``build()`` keyword that may name its source
file explicitly, or None) and ``build(out_dir, source_path, force) -> BuildResult``. :class:`OnnxRecipe`
is the recipe of every ONNX model: its spec, its source file, and a ``prepare`` step that turns the
source into a module, a contract and real validation inputs; everything else is here, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facestyle.manifest import file_sha256, manifest_path, up_to_date, write_manifest

from ..dlib.files import locate_dlib_model, models_package_version
from ..provenance import built_at, log, versions
from ..spec import ModelSpec


@dataclass(frozen=True)
class BuildResult:
    model: str
    precision: str
    artifact: Path
    status: str  # "built" or "up to date"
    max_abs_diff: float | None  # None: not an ONNX export (parity is proven against dlib in the tests)
    atol: float | None
    seconds: float
    size_bytes: int


@dataclass
class Prepared:
    module: object  # torch.nn.Module
    contract: object  # a facestyle.contract dataclass
    example_inputs: tuple
    feeds: list[dict[str, np.ndarray]]  # real inputs for validation
    feeds_description: str
    manifest_extra: dict = field(default_factory=dict)


def dlib_source(source: Path, source_sha: str, parameters: int | None) -> dict:
    """The manifest's ``source`` for a model read from dlib's published files."""
    return {
        "file": source.name,
        "sha256": source_sha,
        "package": "face_recognition_models",
        "package_version": models_package_version(),
        "license": "CC0-1.0 (dlib models by Davis King)",
        "parameters": parameters,
    }


def normalise(images: np.ndarray, mean, scale: float) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, as dlib's input layers do."""
    x = (images.astype(np.float32) - np.asarray(mean, np.float32)) * np.float32(scale)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def io_of(spec: ModelSpec) -> dict:
    describe = lambda ts: [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in ts]
    return {"inputs": describe(spec.inputs), "outputs": describe(spec.outputs)}


@dataclass(frozen=True)
class OnnxRecipe:
    kind: str  # a facestyle.kinds name
    spec: ModelSpec
    source_file: str
    prepare: Callable[[Path, str], Prepared]
    locate: Callable[[str, str | Path | None], Path] = locate_dlib_model  # (source_file, explicit path) -> file
    describe_source: Callable[[Path, str, int | None], dict] = dlib_source
    source_option: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def build(self, out_dir: Path, source_path: str | Path | None = None, force: bool = False) -> BuildResult:
        started = time.perf_counter()
        source = self.locate(self.source_file, source_path)
        source_sha = file_sha256(source)
        artifact = Path(out_dir) / self.name / "fp32.onnx"
        fingerprint = self.spec.fingerprint(source_sha)
        if not force and (existing := up_to_date(artifact, fingerprint)):
            parity = existing["parity"]["outputs"][self.spec.outputs[0].name]
            return self._result(artifact, "up to date", parity, started)
        report = self._export_validated(source, source_sha, artifact, fingerprint)
        return self._result(artifact, "built", report.outputs[self.spec.outputs[0].name], started)

    def _export_validated(self, source: Path, source_sha: str, artifact: Path, fingerprint: str):
        from ..onnx_export import onnx_from_module
        from ..validate import validate_onnx

        spec = self.spec
        log(f"[{spec.name}] reading {source}")
        prepared = self.prepare(source, source_sha)
        log(f"[{spec.name}] exporting ONNX (opset {spec.opset}) to {artifact}")
        onnx_from_module(prepared.module, spec, prepared.example_inputs, artifact, prepared.contract.to_metadata())
        log(f"[{spec.name}] validating onnxruntime against PyTorch on {prepared.feeds_description}")
        try:
            report = validate_onnx(artifact, prepared.module, spec, prepared.feeds)
        except BaseException:
            artifact.unlink(missing_ok=True)  # never leave an unvalidated artifact behind
            raise
        extra = dict(prepared.manifest_extra)
        write_manifest(manifest_path(artifact), {
            "model": spec.name,
            "kind": self.kind,
            "precision": "fp32",
            "artifact": artifact.name,
            "artifact_sha256": file_sha256(artifact),
            "fingerprint": fingerprint,
            "source": self.describe_source(source, source_sha, extra.pop("parameters", None)),
            "opset": spec.opset,
            **io_of(spec),
            "contract": asdict(prepared.contract),
            **extra,
            "parity": {"reference": "PyTorch port of the dlib network", "inputs": prepared.feeds_description, **report.to_json()},
            "versions": versions("torch", "onnx", "onnxruntime"),
            "built_at": built_at(),
        })
        return report

    def _result(self, artifact: Path, status: str, parity: dict, started: float) -> BuildResult:
        return BuildResult(self.name, "fp32", artifact, status, parity["max_abs_diff"], parity["atol"],
                           time.perf_counter() - started, artifact.stat().st_size)
