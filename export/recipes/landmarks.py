"""Recipe of dlib's 5-point shape predictor: plain numpy arrays (.npz, no pickle) for the runtime."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from facestyle.manifest import file_sha256, manifest_path, up_to_date, write_manifest

from ..dlib.files import SHAPE_PREDICTOR_5, locate_dlib_model
from ..provenance import built_at, log
from .base import BuildResult, dlib_source

LANDMARKS_MODEL = "landmarks-5"
LANDMARKS_RECIPE = 1  # bump when the .npz layout changes


@dataclass(frozen=True)
class LandmarksRecipe:
    name: str = LANDMARKS_MODEL
    source_option: str = "shape_predictor"

    def build(self, out_dir: Path, source_path: str | Path | None = None, force: bool = False) -> BuildResult:
        started = time.perf_counter()
        source = locate_dlib_model(SHAPE_PREDICTOR_5, source_path)
        source_sha = file_sha256(source)
        artifact = Path(out_dir) / self.name / "model.npz"
        fingerprint = hashlib.sha256(json.dumps([self.name, LANDMARKS_RECIPE, source_sha]).encode()).hexdigest()
        status = "up to date"
        if force or not up_to_date(artifact, fingerprint):
            self._convert(source, source_sha, artifact, fingerprint)
            status = "built"
        return BuildResult(self.name, "float32", artifact, status, None, None,
                           time.perf_counter() - started, artifact.stat().st_size)

    def _convert(self, source: Path, source_sha: str, artifact: Path, fingerprint: str) -> None:
        from ..dlib.shape_predictor import read_shape_predictor, save_shape_predictor_npz

        log(f"[{self.name}] reading {source}")
        arrays = read_shape_predictor(source)
        save_shape_predictor_npz(arrays, artifact)
        write_manifest(manifest_path(artifact), {
            "model": self.name,
            "kind": LANDMARKS_MODEL,
            "precision": "float32",
            "artifact": artifact.name,
            "artifact_sha256": file_sha256(artifact),
            "fingerprint": fingerprint,
            "source": dlib_source(source, source_sha, None),
            "contract": {
                "model": self.name,
                "parts": arrays.num_parts,
                "cascades": arrays.num_cascades,
                "trees_per_cascade": arrays.num_trees,
                "input": "RGB uint8 image and face boxes [left, top, right, bottom], inclusive",
                "output": "integer pixel points, dlib part order",
                "source_sha256": source_sha,
            },
            "built_at": built_at(),
        })


def landmarks_recipes() -> dict[str, LandmarksRecipe]:
    return {LANDMARKS_MODEL: LandmarksRecipe()}
