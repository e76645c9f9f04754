"""Recipes of the style networks: one per shipped style (``export/style/weights``), trained by ``train-style``,
and one per user-trained style (a ``train-style`` run folder given to ``facestyle build --style-weights``)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from facestyle.errors import BadInputError
from facestyle.kinds import KINDS

from ..spec import STYLE_TRANSFORMER
from ..style.shipped import LICENCE, locate_style_weights, read_card, shipped_styles, style_module_from_safetensors
from .base import OnnxRecipe, Prepared

CARD_FIELDS = ("style_image", "content", "steps", "batch", "resolution", "final_losses", "device", "training_seconds")


USER_LICENCE = "weights: trained by the user with facestyle train-style; terms of its painting and content photos"
STYLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def describe_style_source(source: Path, source_sha: str, parameters: int | None) -> dict:
    return {"file": source.name, "sha256": source_sha, "license": LICENCE, "parameters": parameters}


def describe_user_style_source(source: Path, source_sha: str, parameters: int | None) -> dict:
    return {"file": source.name, "path": str(source.resolve()), "sha256": source_sha, "license": USER_LICENCE,
            "parameters": parameters}


def prepare_style(spec, source: Path, source_sha: str) -> Prepared:
    import torch

    from facestyle.contract import StyleContract

    from ..sample_inputs import natural_images

    module, variant = style_module_from_safetensors(source)
    card = read_card(source)
    contract = StyleContract(
        model="style", style=spec.name.removeprefix(KINDS["style"].model_prefix), variant=variant,
        input_name=spec.inputs[0].name, output_name=spec.outputs[0].name, layout="NCHW", channel_order="RGB",
        input_range=(0.0, 255.0), output_range=(0.0, 255.0), size_multiple=module.size.multiple,
        card={k: card[k] for k in CARD_FIELDS if k in card},
        source_sha256=source_sha,
    )
    sizes = [(97, 131), (240, 320), (333, 517)]
    photos = [np.ascontiguousarray(i.transpose(2, 0, 1)[None], np.float32) for i in natural_images(sizes)]
    return Prepared(
        module=module, contract=contract, example_inputs=(torch.from_numpy(photos[1]),),
        feeds=[{"image": p} for p in photos],
        feeds_description="natural photos from scikit-image data at 97x131, 240x320 and 333x517 (odd sizes kept)",
        manifest_extra={"parameters": sum(p.numel() for p in module.parameters())},
    )


def style_recipe(style: str) -> OnnxRecipe:
    spec = replace(STYLE_TRANSFORMER, name=f"{KINDS['style'].model_prefix}{style}")
    return OnnxRecipe("style", spec, style, lambda source, sha: prepare_style(spec, source, sha),
                      locate_style_weights, describe_style_source)


def style_recipes() -> dict[str, OnnxRecipe]:
    """One recipe per shipped style."""
    return {recipe.name: recipe for recipe in map(style_recipe, shipped_styles())}


def user_style_weights(path: str | Path) -> tuple[str, Path]:
    """(style name, weights file) of a ``train-style`` run folder or of its ``<name>.safetensors``."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.glob("*.safetensors") if p.with_name(p.name.replace(".safetensors", ".card.json")).is_file())
        if len(found) != 1:
            what = "none" if not found else ", ".join(p.name for p in found)
            raise BadInputError(f"--style-weights {path}: expected one <style>.safetensors with its .card.json "
                                f"(what `facestyle train-style` writes when it finishes), found {what}")
        path = found[0]
    elif path.suffix != ".safetensors" or not path.is_file():
        raise BadInputError(f"--style-weights {path}: expected a train-style run folder or its <style>.safetensors")
    name = str(read_card(path).get("style", ""))
    if not STYLE_NAME.fullmatch(name):
        raise BadInputError(f"--style-weights {path}: the card's style name {name!r} is not a usable name (letters, digits, _ . -)")
    if name in shipped_styles():
        raise BadInputError(f"--style-weights {path}: {name!r} is a shipped style; train it under another --name")
    return name, path


def user_style_recipe(path: str | Path) -> OnnxRecipe:
    """The recipe of a user-trained style: the same prepare, export, parity and manifest as a shipped one."""
    name, weights = user_style_weights(path)
    spec = replace(STYLE_TRANSFORMER, name=f"{KINDS['style'].model_prefix}{name}")
    return OnnxRecipe("style", spec, str(weights), lambda source, sha: prepare_style(spec, source, sha),
                      lambda file, _explicit: Path(file), describe_user_style_source)
