"""Whether a serialized TensorRT engine fits this machine, and what happens when it does not.

Engines are tied to the GPU model, the TensorRT version and the ONNX they came from, and TensorRT
has no API that says whether an engine fits: the sidecar manifest (``<precision>.trt.manifest.json``,
never a header in front of the engine bytes, which would break trtexec and every native loader)
records what it was built for, :func:`engine_differences` compares that with here, and a failed
deserialization counts as a mismatch too. Either way: rebuild from the ONNX (``rebuild=True``) or
raise :class:`EngineMismatchError` naming each difference. Nothing here imports TensorRT.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import EngineMismatchError, ManifestError
from ...manifest import artifact_of, manifest_path, read_manifest

ENGINE_SUFFIX = ".trt.engine"


# -- paths ------------------------------------------------------------------------------------
def engine_path_for(onnx_path: str | Path) -> Path:
    """``engines/face-embed/fp32.onnx`` -> ``engines/face-embed/fp32.trt.engine``.

    The extra ``.trt`` keeps the engine's manifest (``fp32.trt.manifest.json``) apart from the ONNX's.
    """
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.stem + ENGINE_SUFFIX)


def onnx_path_of(engine_path: Path, manifest: Mapping | None) -> Path | None:
    """The ONNX an engine was built from: its manifest says, else the sibling of the same precision."""
    recorded = (manifest or {}).get("onnx", {}).get("file")
    if recorded:
        return engine_path.parent / recorded
    if engine_path.name.endswith(ENGINE_SUFFIX):
        return engine_path.with_name(engine_path.name[: -len(ENGINE_SUFFIX)] + ".onnx")
    return None


# -- does an engine fit here? -----------------------------------------------------------------------
@dataclass(frozen=True)
class EngineEnvironment:
    """What an engine must have been built for to run here."""

    tensorrt_version: str
    gpu_name: str | None
    compute_capability: str | None  # "9.0"
    onnx_sha256: str | None = None  # the ONNX now beside the engine; None: not there to compare
    driver_version: str | None = None  # recorded only: TensorRT's own deserialization judges it


def engine_differences(manifest: Mapping, environment: EngineEnvironment) -> list[str]:
    """Every reason an engine described by ``manifest`` does not fit ``environment``; empty if it does.

    The TensorRT version must match exactly (an engine is only guaranteed to load in the version that
    built it), the GPU by name and compute capability, and the ONNX by sha256 (else the engine runs a
    model that is no longer the one on disk).
    """
    built_trt = (manifest.get("tensorrt") or {}).get("version")
    gpu = manifest.get("gpu") or {}
    built_onnx = (manifest.get("onnx") or {}).get("sha256")
    differences = []
    if built_trt != environment.tensorrt_version:
        differences.append(f"TensorRT version: engine built with {built_trt}, this machine has {environment.tensorrt_version}")
    if gpu.get("name") != environment.gpu_name:
        differences.append(f"GPU: engine built on {gpu.get('name')}, this machine has {environment.gpu_name}")
    if gpu.get("compute_capability") != environment.compute_capability:
        differences.append(
            f"compute capability: engine built for {gpu.get('compute_capability')}, this GPU is {environment.compute_capability}"
        )
    if environment.onnx_sha256 is not None and built_onnx != environment.onnx_sha256:
        differences.append(
            f"ONNX: engine built from sha256 {str(built_onnx)[:12]}, the ONNX now has {environment.onnx_sha256[:12]}"
        )
    return differences


def rebuild_engine(engine_path: Path, onnx_path: Path | None, previous: Mapping | None) -> dict:
    """Build ``engine_path`` again from its ONNX, with the profiles and settings it had; returns the new manifest.

    The only place the runtime reaches into ``facestyle.export``, and only when asked to rebuild.
    """
    if onnx_path is None or not onnx_path.is_file():
        raise EngineMismatchError(
            f"{engine_path}: cannot rebuild the engine: its ONNX {onnx_path} is missing; run `facestyle build`"
        )
    from facestyle.export.engine import engine_from_onnx  # lazy: the runtime never imports export otherwise

    previous = previous or {}
    options = {key: previous[key] for key in ("profiles", "workspace_bytes", "concurrent_contexts", "allow_tf32")
               if key in previous}
    engine_from_onnx(onnx_path, engine_path, precision=previous.get("precision"), **options)
    return read_manifest(manifest_path(engine_path))


def _mismatch(engine_path: Path, reasons: Sequence[str]) -> EngineMismatchError:
    return EngineMismatchError(
        f"{engine_path}: engine does not fit this machine: {'; '.join(reasons)}. Rebuild it from the ONNX "
        "(`facestyle build --engine trt`, or load with rebuild=True)"
    )


def resolve_engine(engine_path: str | Path, environment: EngineEnvironment, rebuild: bool = False) -> dict:
    """The manifest of an engine that fits ``environment``, rebuilding it first when allowed.

    Raises :class:`EngineMismatchError` naming each difference (or the missing engine) otherwise.
    """
    engine_path = Path(engine_path)
    try:
        manifest = read_manifest(manifest_path(engine_path))
        artifact_of(manifest_path(engine_path), manifest)  # the engine is there and is what was written
        reasons = engine_differences(manifest, environment)
    except ManifestError as exc:
        manifest, reasons = None, [str(exc)]
    if not reasons:
        return manifest
    if not rebuild:
        raise _mismatch(engine_path, reasons)
    return rebuild_engine(engine_path, onnx_path_of(engine_path, manifest), manifest)


def deserialize_or_rebuild(
    engine_path: Path, manifest: dict, deserialize: Callable[[bytes], object], rebuild: bool = False
) -> tuple[object, dict]:
    """Deserialize the engine; a failure (None or an exception) means "does not fit": rebuild once or raise."""
    engine = _try_deserialize(engine_path, deserialize)
    if engine is not None:
        return engine, manifest
    reason = "TensorRT could not deserialize it (another TensorRT version, GPU or driver)"
    if not rebuild:
        raise _mismatch(engine_path, [reason])
    manifest = rebuild_engine(engine_path, onnx_path_of(engine_path, manifest), manifest)
    engine = _try_deserialize(engine_path, deserialize)
    if engine is None:
        raise EngineMismatchError(f"{engine_path}: TensorRT cannot deserialize the engine it has just built")
    return engine, manifest


def _try_deserialize(engine_path: Path, deserialize: Callable[[bytes], object]):
    try:
        return deserialize(engine_path.read_bytes())
    except Exception:  # TensorRT raises its own pybind types; any failure means the same here
        return None
