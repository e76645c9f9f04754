"""TensorRT optimisation profiles: one per model, built from its kind's axis ranges, and checked.

A profile maps each input name to its ``{"min", "opt", "max"}`` shapes. What each dynamic axis
ranges over is the model kind's to say (``facestyle.kinds``, ``ModelKind.axis_ranges``); the kind
comes from the ONNX's manifest (``facestyle.kinds.kind_of_manifest``) or, where a caller has only a model name,
from the kinds table's answer for that name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...errors import BadInputError, ModelFormatError
from ...kinds import ModelKind, kind_of_model

# A profile maps each input name to its {"min", "opt", "max"} shapes (lists of ints), JSON as it is.
Profile = dict[str, dict[str, list[int]]]
Inputs = Sequence[tuple[str, Sequence[int | None]]]  # (name, shape with None for a dynamic axis)


def _axis_ranges(kind: ModelKind | str) -> Mapping[str, tuple[int, int, int]]:
    """The kind's dynamic axis ranges; a model or kind name is looked up in the kinds table.

    A model of no known kind (an ONNX from elsewhere) has none: only its fixed axes get a default.
    """
    if isinstance(kind, ModelKind):
        return kind.axis_ranges
    try:
        return kind_of_model(kind).axis_ranges
    except BadInputError:
        return {}


def _axis_name(rank: int, axis: int) -> str:
    if axis == 0:
        return "batch"
    if rank == 4 and axis in (2, 3):  # NCHW
        return "height" if axis == 2 else "width"
    return f"axis {axis}"


def default_profiles(kind: ModelKind | str, inputs: Inputs, source: str = "model") -> list[Profile]:
    """One profile covering ``inputs`` for a model of ``kind`` (a ModelKind, or a kind or model name)."""
    ranges = _axis_ranges(kind)
    label = kind.name if isinstance(kind, ModelKind) else kind
    profile: Profile = {}
    for name, shape in inputs:
        bounds = {"min": [], "opt": [], "max": []}
        for axis, dim in enumerate(shape):
            axis_name = _axis_name(len(shape), axis)
            if dim is not None:
                low = opt = high = int(dim)
            elif axis_name in ranges:
                low, opt, high = ranges[axis_name]
            else:
                raise ModelFormatError(
                    f"input {name!r} has a dynamic {axis_name} and there is no default range for a "
                    f"{label!r} model: pass profiles explicitly",
                    source,
                )
            for key, value in zip(("min", "opt", "max"), (low, opt, high)):
                bounds[key].append(value)
        profile[name] = bounds
    return [profile]


def check_profiles(profiles: Sequence[Profile], inputs: Inputs) -> None:
    """Each profile names every input once, with shapes of the input's rank that keep its fixed axes
    and grow min <= opt <= max."""
    if not profiles:
        raise BadInputError("profiles: expected at least one optimisation profile, got none")
    declared = {name: list(shape) for name, shape in inputs}
    for number, profile in enumerate(profiles):
        if sorted(profile) != sorted(declared):
            raise BadInputError(f"profile {number}: names inputs {sorted(profile)}, the model takes {sorted(declared)}")
        for name, shape in declared.items():
            _check_profile_input(number, name, shape, profile[name])


def _check_profile_input(number: int, name: str, shape: list[int | None], bounds: Mapping) -> None:
    want = "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
    where = f"profile {number}, input {name!r}"
    if sorted(bounds) != ["max", "min", "opt"]:
        raise BadInputError(f"{where}: expected keys min, opt, max, got {sorted(bounds)}")
    for key in ("min", "opt", "max"):
        dims = list(bounds[key])
        fits = len(dims) == len(shape) and all(isinstance(d, int) and d > 0 for d in dims)
        if not fits or any(fixed is not None and fixed != d for fixed, d in zip(shape, dims)):
            raise BadInputError(f"{where}: {key} shape must be positive ints like {want}, got {dims}")
    if not all(lo <= op <= hi for lo, op, hi in zip(bounds["min"], bounds["opt"], bounds["max"])):
        raise BadInputError(f"{where}: needs min <= opt <= max on every axis, got {dict(bounds)}")


def inputs_from_manifest(manifest: Mapping) -> list[tuple[str, list[int | None]]]:
    """(name, shape) of each input as an ONNX manifest records it (a string dimension is dynamic)."""
    return [(i["name"], [d if isinstance(d, int) else None for d in i["shape"]]) for i in manifest.get("inputs", [])]

