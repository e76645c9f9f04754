"""The shipped styles: networks trained by ``facestyle train-style``, committed as fp16 safetensors.

Each style is two files in ``export/style/weights/``: ``<name>.safetensors`` (the weights, with the
variant in the safetensors metadata) and ``<name>.card.json`` (how they were trained). ``facestyle build``
exports each one to ``engines/style-<name>/fp32.onnx`` with the card inside the ONNX metadata (its
recipe: ``facestyle.export.recipes.style``).
"""

from __future__ import annotations

import json
from pathlib import Path

from facestyle.errors import BadInputError, ModelFormatError

WEIGHTS_DIR = Path(__file__).parent / "weights"
LICENCE = "weights: trained by facestyle's own code (MIT); style image: public-domain painting"


def shipped_styles(weights_dir: Path | None = None) -> list[str]:
    weights_dir = weights_dir or WEIGHTS_DIR
    return sorted(p.name.removesuffix(".safetensors") for p in weights_dir.glob("*.safetensors")
                  if (weights_dir / p.name.replace(".safetensors", ".card.json")).is_file())


def locate_style_weights(style: str, path: str | Path | None = None) -> Path:
    weights = Path(path) if path else WEIGHTS_DIR / f"{style}.safetensors"
    if not weights.is_file():
        raise BadInputError(f"style {style!r}: no weights at {weights} (shipped: {', '.join(shipped_styles()) or 'none'})")
    return weights


def read_card(weights: Path) -> dict:
    card = weights.with_name(weights.name.replace(".safetensors", ".card.json"))
    try:
        return json.loads(card.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"the model card beside the weights is missing or unreadable ({exc})", card) from None


def style_module_from_safetensors(weights: Path):
    """``ModuleFromSafetensors``: a StyleTransformer with the (fp16) weights in the file, as float32."""
    from safetensors import SafetensorError, safe_open

    from .transformer import SIZES, StyleTransformer

    try:
        with safe_open(str(weights), framework="pt") as f:
            variant = (f.metadata() or {}).get("variant")
            state = {k: f.get_tensor(k).float() for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise ModelFormatError(f"not a readable safetensors file ({exc})", weights) from None
    if variant not in SIZES:
        raise ModelFormatError(f"safetensors metadata names variant {variant!r}, expected one of {sorted(SIZES)}", weights)
    module = StyleTransformer(SIZES[variant])
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelFormatError(f"weights do not fit the {variant} network "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})", weights)
    return module.eval(), variant
