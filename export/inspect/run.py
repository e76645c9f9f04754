"""``facestyle inspect``: what a layer's units respond to, as a grid of top-9 patches (and JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facestyle.errors import BadInputError

from .activations import LayerProbe, UnitTop, collect, overlap, parse_units, top_patches
from .grid import cell_size, draw_grid, save_grid
from .receptive import Field, layer_names, receptive_fields
from .targets import Target, image_files, resolve_target


@dataclass(frozen=True)
class Layer:
    name: str
    field: Field
    channels: int | None

    def to_json(self) -> dict:
        return {"name": self.name, "channels": self.channels, "field_size": list(self.field.size),
                "field_stride": list(self.field.stride), "field_offset": list(self.field.offset), "exact": self.field.exact}


def model_layers(target: Target) -> list[Layer]:
    """The inspectable layers of ``target``'s model in graph order, with receptive fields and unit counts."""
    import onnx

    model = onnx.load(str(target.onnx))
    fields = receptive_fields(model, target.image_tensor, spatial_rank=2)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        shapes = {v.name: v.type.tensor_type.shape for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    except Exception:  # shape inference is a help only
        shapes = {}
    out = []
    for name in layer_names(model, fields):
        dims = shapes.get(name)
        channels = dims.dim[1].dim_value if dims is not None and len(dims.dim) > 1 and dims.dim[1].dim_value else None
        out.append(Layer(name, fields[name], channels))
    if not out:
        raise BadInputError(f"{target.onnx}: no layer with a receptive field from {target.image_tensor!r}")
    return out


def default_layer(layers: list[Layer]) -> Layer:
    """The middle layer of the list."""
    return layers[len(layers) // 2]


def pick_layer(layers: list[Layer], name: str | None) -> Layer:
    if name is None:
        return default_layer(layers)
    for layer in layers:
        if layer.name == name:
            return layer
    raise BadInputError(f"--layer {name!r}: not a layer of this model (see --list-layers)")


def top9(target: Target, layer: Layer, units_text: str, files: list[Path], show_progress: bool = True,
         per_input: int = 1):
    """(items, per-unit tops) for ``layer`` over the inputs made from ``files``."""
    units = parse_units(units_text, layer.channels)
    with LayerProbe(target.onnx, layer.name, target.image_tensor) as probe:
        items, maxima, positions, shape = collect(probe, target.items(files), len(files), layer.field, show_progress, per_input)
    if max(units) >= shape[0]:
        raise BadInputError(f"--units {units_text!r}: layer {layer.name!r} has {shape[0]} units (0-{shape[0] - 1})")
    return items, top_patches(items, maxima, positions, layer.field, units)


def inspect_model(model: str, images: str | Path, out: str | Path | None = None, layer: str | None = None,
                  units: str = "0-15", precision: str = "fp32", engines=None, size: int = 256,
                  limit: int | None = None, show_progress: bool = True, per_input: int = 1) -> dict:
    """Find the top-9 patches of ``units`` of ``layer`` over the photos in ``images``; draw them to ``out``.

    With ``precision`` other than fp32 the grid shows that variant, and ``overlap`` says how many of
    each unit's top-9 patches (and inputs) fp32 picks too."""
    files = image_files(images, limit)
    target = resolve_target(model, engines, precision, size)
    layers = model_layers(target)
    chosen = pick_layer(layers, layer)
    if per_input < 1:
        raise BadInputError(f"--per-image {per_input}: at least 1")
    items, tops = top9(target, chosen, units, files, show_progress, per_input)
    result = {"model": target.name, "precision": precision, "layer": chosen.to_json(), "inputs": len(items),
              "units": [{"unit": t.unit, "patches": [p.to_json() for p in t.patches]} for t in tops]}
    if precision != "fp32":
        reference = resolve_target(model, engines, "fp32", size)
        _, ref_tops = top9(reference, pick_layer(model_layers(reference), chosen.name), units, files, show_progress,
                           per_input)
        result["overlap_with_fp32"] = overlap(ref_tops, tops)
    if out is not None:
        title = (f"{target.name} {precision}  layer {chosen.name}  field {chosen.field.describe()}  "
                 f"top 9 of {len(items)} inputs")
        save_grid(draw_grid(tops, items, title, cell_size(max(chosen.field.size))), out)
        result["grid"] = str(out)
    return result


def list_layers(model: str, precision: str = "fp32", engines=None) -> list[dict]:
    target = resolve_target(model, engines, precision)
    return [layer.to_json() for layer in model_layers(target)]


__all__ = ["Layer", "UnitTop", "inspect_model", "list_layers", "model_layers", "pick_layer", "top9"]
