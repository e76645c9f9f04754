"""The shipped styles: networks trained by ``facestyle train-style``, committed as fp16 safetensors.

Each style is two files in ``export/style/weights/``: ``<name>.safetensors`` (the weights, with the
variant in the safetensors metadata) and ``<name>.card.json`` (how they were trained). ``facestyle build``
exports each one to ``engines/style-<name>/fp32.onnx`` with the card inside the ONNX metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
        raise ModelFormatError(f"weights do not fit the {variant} network (missing {missing[:3]}, unexpected {unexpected[:3]})", weights)
    return module.eval(), variant


def describe_style_source(source: Path, source_sha: str, parameters: int | None) -> dict:
    return {"file": source.name, "sha256": source_sha, "license": LICENCE, "parameters": parameters}


def prepare_style(spec, source: Path, source_sha: str):
    import torch

    from facestyle.contract import StyleContract

    from ..build import Prepared
    from ..sample_inputs import natural_images

    module, variant = style_module_from_safetensors(source)
    card = read_card(source)
    contract = StyleContract(
        model="style", style=spec.name.removeprefix("style-"), variant=variant,
        input_name=spec.inputs[0].name, output_name=spec.outputs[0].name, layout="NCHW", channel_order="RGB",
        input_range=(0.0, 255.0), output_range=(0.0, 255.0), size_multiple=module.size.multiple,
        card={k: card[k] for k in ("style_image", "content", "steps", "batch", "resolution", "final_losses", "device",
                                   "training_seconds") if k in card},
        source_sha256=source_sha,
    )
    photos = [np.ascontiguousarray(i.transpose(2, 0, 1)[None], np.float32) for i in natural_images([(97, 131), (240, 320), (333, 517)])]
    return Prepared(
        module=module, contract=contract, example_inputs=(torch.from_numpy(photos[1]),),
        feeds=[{"image": p} for p in photos],
        feeds_description="natural photos from scikit-image data at 97x131, 240x320 and 333x517 (odd sizes kept)",
        manifest_extra={"parameters": sum(p.numel() for p in module.parameters())},
    )
