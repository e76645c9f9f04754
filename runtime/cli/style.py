"""``facestyle style-optimize``, ``train-style``, ``styles`` and ``stylize``: the slow and the fast style methods."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import BadInputError
from .common import add_backend_option, add_engines_option, add_precision_option, export_extra_missing
from .io import add_overwrite_option, check_output


def _fit_image(path, size: int):
    """The image at ``path``, shrunk (aspect kept) so its longer side is at most ``size``."""
    import numpy as np
    from PIL import Image

    from ..images import load_image

    image = Image.fromarray(load_image(path))
    image.thumbnail((size, size), Image.LANCZOS)
    return np.asarray(image)


def _cmd_style_optimize(args: argparse.Namespace) -> int:
    from ..images import image_format_for, save_image
    from ..progress import Progress

    try:
        from facestyle.export.style.optimize import StyleCostWeights, optimize_image
        from facestyle.export.style.vgg import vgg16_from_onnx
    except ImportError as exc:
        raise export_extra_missing("style-optimize", exc) from None
    if args.steps < 1 or args.size < 16:
        raise BadInputError(f"--steps {args.steps} / --size {args.size}: expected at least 1 step and a size of 16 or more")
    image_format_for(args.out)  # an unknown extension fails now, not after the optimisation
    check_output(args.out, (args.content, args.style), args.overwrite)  # and an unwritable output
    content, style = _fit_image(args.content, args.size), _fit_image(args.style, args.size)
    with Progress(args.steps, "optimising", enabled=not args.quiet) as bar:
        image, log = optimize_image(vgg16_from_onnx(), content, style, steps=args.steps, init=args.init,
                                    weights=StyleCostWeights(),
                                    on_step=lambda e: bar.update(postfix=f"J={e['total']:.3g} content={e['content']:.3g} style={e['style']:.3g}"))
    save_image(image, args.out)
    first, last = log[0], log[-1]
    print(json.dumps({"out": str(args.out), "size": [image.shape[1], image.shape[0]], "steps": args.steps,
                      "style_cost": [first["style"], last["style"]], "content_cost": [first["content"], last["content"]]}))
    return 0


def _cmd_train_style(args: argparse.Namespace) -> int:
    from ..images import load_image
    from ..progress import Progress

    try:
        from facestyle.export.style.optimize import StyleCostWeights
        from facestyle.export.style.train import StyleTrainer, TrainConfig, content_files, device_description
        from facestyle.export.style.vgg import vgg16_from_onnx
    except ImportError as exc:
        raise export_extra_missing("train-style", exc) from None
    files = content_files(args.content_dir)
    config = TrainConfig(variant=args.variant, size=args.size, steps=args.steps, batch=args.batch, lr=args.lr, style_size=args.style_size,
                         style_weight=args.style_weight, content_weight=args.content_weight, tv_weight=args.tv_weight,
                         checkpoint_every=args.checkpoint_every, sample_every=args.sample_every, seed=args.seed,
                         init_from=str(args.init_from) if args.init_from else None,
                         weights=StyleCostWeights(content_layer=args.content_layer), gram=args.gram,
                         style_crop=args.style_crop, shift_weight=args.shift_weight, ema=args.ema)
    if args.out.exists() and (args.out / "checkpoint.pt").exists() and not args.resume:
        raise BadInputError(f"--out {args.out} holds a checkpoint: pass --resume to continue it, or choose a new folder")
    sample = load_image(args.sample) if args.sample else load_image(files[0])
    name = args.name or Path(args.style).stem
    trainer = StyleTrainer(vgg16_from_onnx(), load_image(args.style), files, args.out, config, sample, name)
    start = trainer.resume() if args.resume else 0
    with Progress(config.steps, f"training {name}", enabled=not args.quiet) as bar:
        bar.count = start
        last = trainer.run(bar)
    weights, card = trainer.export_weights(str(args.style), args.device or device_description())
    print(json.dumps({"out": str(args.out), "resumed_from": start, "steps": trainer.step, "weights": str(weights),
                      "card": str(card), "last": last}))
    return 0


def _cmd_styles(args: argparse.Namespace) -> int:
    from ..style.stylizer import list_styles

    styles = list_styles(args.engines)
    if args.json:
        print(json.dumps(styles, indent=2))
        return 0
    if not styles:
        print(f"no styles built in {args.engines or 'engines'}: run `facestyle build`")
        return 0
    for s in styles:
        card = s["card"]
        print(f"{s['name']:<32} {s['variant'] or '?':<8} {','.join(s['precisions']):<20} "
              f"{card.get('steps', '?')} steps at {card.get('resolution', '?')} px on {card.get('device', '?')}")
    return 0


def _cmd_stylize(args: argparse.Namespace) -> int:
    from ..images import image_format_for, load_image, save_image
    from ..style.stylizer import Stylizer

    image_format_for(args.out)
    check_output(args.out, (args.input,), args.overwrite)  # before the model is loaded
    stylizer = Stylizer.from_engines(args.style, args.engines, args.precision, backend=args.backend, tile=args.tile,
                                     overlap=args.overlap)
    out = stylizer.stylize(load_image(args.input), strength=args.strength, max_side=args.max_side)
    save_image(out, args.out)
    print(json.dumps({"out": str(args.out), "style": stylizer.name, "precision": stylizer.precision,
                      "size": [out.shape[1], out.shape[0]], "tiled": max(out.shape[:2]) > stylizer.tile}))
    return 0


def _register_train_style(subparsers) -> None:
    p = subparsers.add_parser("train-style", help="the fast method: train a feed-forward network for one style")
    p.add_argument("--style", required=True, help="the style image (a painting)")
    p.add_argument("--content-dir", required=True, type=Path, help="folder of training photos (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint, loss.jsonl, samples/, weights")
    p.add_argument("--name", help="style name (default: the style file's stem)")
    p.add_argument("--variant", choices=["edge2", "edge", "standard"], default="edge2",
                   help="edge2 (default): the camera-speed net without the grid pattern; edge: the older one (a "
                   "period-2 grid, kept for its shipped weights); standard: Johnson et al.'s 1.7M-parameter net")
    p.add_argument("--size", type=int, default=256, help="training crop side (default 256)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--style-size", type=int, help="the painting's longer side for its Gram matrices (default: --size); "
                   "larger gives larger brush strokes")
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--gram", choices=["sum", "per-pixel"], default="sum",
                   help="per-pixel: the painting's Gram matrices are scaled to the crop's size, so --style-size sets "
                   "the stroke scale without changing the style weight; sum (default): as the shipped edge nets")
    p.add_argument("--content-layer", choices=["relu1_2", "relu2_2", "relu3_3", "relu4_3"], default="relu2_2",
                   help="the VGG16 layer the content cost compares (default relu2_2; deeper leaves the finer "
                   "textures to the style)")
    p.add_argument("--style-weight", type=float, default=1e5)
    p.add_argument("--tv-weight", type=float, default=1e-2)
    p.add_argument("--style-crop", choices=["full", "square"], default="full",
                   help="square: the painting's centre square at --style-size (what benchmarks/style_quality.py "
                   "compares with); full (default): the whole painting, its longer side at --style-size")
    p.add_argument("--shift-weight", type=float, default=0.0,
                   help="weight of the shift-consistency term: output of a shifted crop vs the shifted output, "
                   "for shifts that are not multiples of the net's stride (removes a learned grid pattern; default 0)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="decay of a moving average of the weights, which is what samples and the exported weights use "
                   "(0.99: about the last 100 steps; default 0: off)")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--sample-every", type=int, default=200)
    p.add_argument("--sample", help="photo to stylise for the samples (default: the first content photo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--init-from", type=Path, help="start from these weights (checkpoint.pt or .safetensors), "
                   "e.g. a content-only run (--style-weight 0): the net then starts out reproducing the photo")
    p.add_argument("--device", help="what to write as the training device in the card (default: described)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train_style)


def register(subparsers) -> None:
    p = subparsers.add_parser("style-optimize", help="the slow method: optimise an image on the style cost (Gatys)")
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=384, help="longest side of the result (default 384)")
    p.add_argument("--init", choices=["content", "noise"], default="content")
    add_overwrite_option(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_style_optimize)

    p = subparsers.add_parser("styles", help="list the built styles (name, variant, precisions, training card)")
    add_engines_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_styles)

    p = subparsers.add_parser("stylize", help="apply a built style to a photo (large photos in feathered tiles)")
    p.add_argument("input")
    p.add_argument("out", type=Path)
    p.add_argument("--style", required=True, help="style name (see `facestyle styles`)")
    p.add_argument("--strength", type=float, default=1.0, help="0 = the photo, 1 = full style (default 1)")
    p.add_argument("--max-side", type=int, help="downscale the photo first so its longer side is at most N")
    p.add_argument("--tile", type=int, default=768, help="photos larger than this are stylised in tiles (default 768)")
    p.add_argument("--overlap", type=int, default=128, help="tile overlap, blended with feathering (default 128)")
    add_engines_option(p)
    add_precision_option(p, "style model variant")
    add_backend_option(p, help=None)
    add_overwrite_option(p)
    p.set_defaults(func=_cmd_stylize)

    _register_train_style(subparsers)
