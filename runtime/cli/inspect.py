"""``facestyle inspect``: each unit's top-9 image patches in a layer, drawn as a grid (``facestyle.export.inspect``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import BadInputError
from .common import add_engines_option, export_extra_missing
from .io import positive_int


def _inspect_api():
    try:
        from facestyle.export import inspect as api
    except ImportError as exc:  # graph surgery needs the onnx package: the export extra
        raise export_extra_missing("`facestyle inspect`", exc) from None
    return api


def _cmd_inspect(args: argparse.Namespace) -> int:
    api = _inspect_api()
    if args.list_layers:
        layers = api.list_layers(args.model, args.precision, args.engines)
        if args.json:
            print(json.dumps(layers))
        else:
            for layer in layers:
                size = "x".join(f"{v:g}" for v in layer["field_size"])
                stride = "x".join(f"{v:g}" for v in layer["field_stride"])
                approx = "" if layer["exact"] else "  (approximate)"
                print(f"{layer['name']}\t{layer['channels'] or '?'} units\tfield {size} px, stride {stride}{approx}")
        return 0
    if args.images is None:
        raise BadInputError("--images DIR is needed (the photos to look through), unless --list-layers")
    if args.out is None and not args.json:
        raise BadInputError("--out grid.png is needed (or --json for the patch coordinates)")
    result = api.inspect_model(args.model, args.images, args.out, layer=args.layer, units=args.units,
                               precision=args.precision, engines=args.engines, size=args.size, limit=args.limit,
                               per_input=args.per_image)
    if args.json:
        print(json.dumps(result))
        return 0
    layer = result["layer"]
    size = "x".join(f"{v:g}" for v in layer["field_size"])
    print(f"{result['model']} {result['precision']}: layer {layer['name']} ({layer['channels']} units, "
          f"field {size} px) over {result['inputs']} inputs -> {result['grid']}")
    for unit in result["units"]:
        values = ", ".join(f"{p['value']:.3g}" for p in unit["patches"])
        print(f"  unit {unit['unit']}: {values}")
    if "overlap_with_fp32" in result:
        overlap = result["overlap_with_fp32"]
        print(f"  top-9 overlap with fp32: {overlap['patch_overlap']:.0%} of patches, {overlap['input_overlap']:.0%} of inputs")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="what a layer's units respond to: top-9 image patches per unit, as a grid")
    p.add_argument("--model", required=True, help="face-embed, face-detect, vgg16 or a style name (e.g. starry_night)")
    p.add_argument("--layer", default=None, help="a tensor name from --list-layers (default: a middle layer)")
    p.add_argument("--units", default="0-15", help="units (channels) of the layer: 0-15, 0,4,9 ... (default: 0-15)")
    p.add_argument("--images", type=Path, default=None, help="folder of photos to look through (searched recursively)")
    p.add_argument("--out", type=Path, default=None, help="the grid image (.png or .jpg)")
    p.add_argument("--precision", default="fp32", help="the variant to inspect; reports the overlap of its top-9 with fp32's")
    p.add_argument("--list-layers", action="store_true", help="print the layers with their receptive fields and stop")
    p.add_argument("--json", action="store_true", help="print the layer, every patch's coordinates and value as JSON")
    p.add_argument("--size", type=positive_int, default=256,
                   help="longer side photos are resized to (detector, styles; default 256)")
    p.add_argument("--limit", type=positive_int, default=None, help="look at the first N photos only")
    p.add_argument("--per-image", type=positive_int, default=1,
                   help="patches one photo (or face) may give a unit, each over half a field from the others (default 1)")
    add_engines_option(p)
    p.set_defaults(func=_cmd_inspect)
