"""Reading and writing the ONNX files of precision variants: a variant carries its source's
metadata (the runtime contract) plus its own ``facestyle.precision``, and is written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

from facestyle.errors import BadInputError, ModelFormatError
from facestyle.manifest import atomic_write_bytes


def load_onnx(src: Path):
    """The ONNX model at ``src``; a typed error naming the file when it is missing or unreadable."""
    import onnx

    if not Path(src).is_file():
        raise BadInputError(f"{src}: no such ONNX model (expected the fp32 artifact that `facestyle build` writes)")
    try:
        return onnx.load(str(src))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for a damaged file
        raise ModelFormatError(f"not a readable ONNX model ({exc})", src) from None


def source_metadata(model) -> list[tuple[str, str]]:
    return [(p.key, p.value) for p in model.metadata_props]


def with_metadata(model, metadata: list[tuple[str, str]], precision: str):
    """``model`` carrying the source's ``metadata_props`` (the runtime contract) and its precision."""
    del model.metadata_props[:]
    for key, value in metadata:
        if key != "facestyle.precision":
            model.metadata_props.add(key=key, value=value)
    model.metadata_props.add(key="facestyle.precision", value=json.dumps(precision))
    return model


def save_checked(model, dst: Path) -> Path:
    """Check, then write all of ``model`` to ``dst`` or nothing (temp file, then rename)."""
    import onnx

    onnx.checker.check_model(model)
    atomic_write_bytes(dst, model.SerializeToString())
    return Path(dst)
