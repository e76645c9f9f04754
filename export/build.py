"""``facestyle build``: every model of every kind, from its source weights to a validated artifact + manifest.

The models and how each is made come from the export kinds table (``facestyle.export.kinds``: one
recipe module per kind in ``recipes/``); this module only walks them, then adds the precision variants
(``facestyle.export.precision``) and TensorRT engines (``facestyle.export.engine``) asked for.
"""

from __future__ import annotations

import time
from pathlib import Path

from facestyle.errors import BadInputError

from .recipes import all_recipes
from .recipes.base import BuildResult

__all__ = ["BuildResult", "build", "build_precision_variants", "build_tensorrt_engines", "format_table"]


def build(
    out_dir: str | Path = "engines",
    force: bool = False,
    recognition_model: str | Path | None = None,
    detector_model: str | Path | None = None,
    shape_predictor: str | Path | None = None,
    models: tuple[str, ...] | None = None,
    style_weights: tuple[str | Path, ...] = (),
) -> list[BuildResult]:
    """Builds ``models`` (default: every recipe of every kind: the face models, the landmarks and every
    shipped style). The three paths name dlib source files explicitly (default: the installed package's).
    ``style_weights``: user-trained styles (``train-style`` run folders); given alone, only those are built."""
    from .recipes.style import user_style_recipe

    recipes = all_recipes()
    user = {recipe.name: recipe for recipe in map(user_style_recipe, style_weights)}
    recipes.update(user)
    models = tuple(models) if models is not None else tuple(user or recipes)
    unknown = [m for m in models if m not in recipes]
    if unknown:
        raise BadInputError(f"unknown model(s) {', '.join(unknown)}: expected some of {', '.join(recipes)}")
    sources = {"recognition_model": recognition_model, "detector_model": detector_model, "shape_predictor": shape_predictor}
    return [recipes[name].build(Path(out_dir), sources.get(recipes[name].source_option), force) for name in models]


def build_precision_variants(out_dir: str | Path, results: list[BuildResult], precisions: tuple[str, ...],
                             force: bool = False) -> list[BuildResult]:
    """fp16 / int8 / int8-trt variants of every ONNX model just built (see ``facestyle.export.precision``)."""
    from facestyle.capabilities import PRECISIONS
    from facestyle.kinds import kind_of_model

    from .precision import build_variants

    # Unknown names go through, so that build_variants names the known ones in its error.
    wanted = tuple(p for p in precisions if p not in PRECISIONS or PRECISIONS[p].derived)
    rows = []
    for result in results:
        if not wanted or not kind_of_model(result.model).precision_variants:
            continue
        for row in build_variants(out_dir, result.model, wanted, force=force):
            rows.append(BuildResult(row["model"], row["precision"], Path(row["artifact"]), row["status"], None, None,
                                    row["seconds"], row["size_bytes"]))
    return rows


def build_tensorrt_engines(out_dir: str | Path, results: list[BuildResult], force: bool = False) -> list[BuildResult]:
    """A TensorRT engine (with its sidecar manifest) for every ONNX artifact; needs TensorRT and a GPU."""
    from facestyle.backends.trt import current_environment, engine_path_for, import_tensorrt, resolve_engine
    from facestyle.errors import EngineMismatchError

    from .engine import engine_from_onnx

    trt = import_tensorrt()
    rows = []
    for result in results:
        if result.artifact.suffix != ".onnx":
            continue
        started, engine = time.perf_counter(), engine_path_for(result.artifact)
        try:
            if force:
                raise EngineMismatchError("rebuild asked for")
            resolve_engine(engine, current_environment(trt, result.artifact))
            status = "up to date"
        except EngineMismatchError:
            engine_from_onnx(result.artifact, engine, timing_cache_path=Path(out_dir) / "trt-timing.cache")
            status = "built"
        rows.append(BuildResult(result.model, f"{result.precision} (TensorRT)", engine, status, None, None,
                                time.perf_counter() - started, engine.stat().st_size))
    return rows


def format_table(results: list[BuildResult]) -> str:
    rows = [("model", "precision", "status", "artifact", "size", "max |ORT - torch|", "tolerance", "time")]
    for r in results:
        parity = ("-", "-") if r.max_abs_diff is None else (f"{r.max_abs_diff:.2e}", f"{r.atol:.0e}")
        rows.append((r.model, r.precision, r.status, str(r.artifact), f"{r.size_bytes / 2**20:.1f} MiB",
                     *parity, f"{r.seconds:.1f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
