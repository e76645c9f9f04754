"""``facestyle style-optimize``, ``train-style``, ``styles`` and ``stylize``: the slow and the fast style methods."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BadInputError, FacestyleError
from ..options import add_options, from_args
from ..train_config import StyleOptimizeConfig, TrainConfig
from .common import add_backend_option, add_engines_option, add_precision_option, export_extra_missing
from .io import add_overwrite_option, check_output, number_between, whole_number


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

    config = from_args(StyleOptimizeConfig, args)  # bad options fail here, before torch loads
    image_format_for(args.out)  # an unknown extension fails now, not after the optimisation
    check_output(args.out, (args.content, args.style), args.overwrite)  # and an unwritable output
    _check_images(("content", args.content), ("style", args.style))  # before torch and VGG16 load
    try:
        from facestyle.export.style.optimize import StyleCostWeights, optimize_image
        from facestyle.export.style.vgg import vgg16_from_onnx
    except ImportError as exc:
        raise export_extra_missing("style-optimize", exc) from None
    content, style = _fit_image(args.content, config.size), _fit_image(args.style, config.size)
    with Progress(config.steps, "optimising", enabled=not args.quiet) as bar:
        image, log = optimize_image(vgg16_from_onnx(), content, style, steps=config.steps, init=config.init,
                                    weights=StyleCostWeights(),
                                    on_step=lambda e: bar.update(postfix=f"J={e['total']:.3g} content={e['content']:.3g} "
                                                                         f"style={e['style']:.3g}"))
    save_image(image, args.out)
    first, last = log[0], log[-1]
    print(json.dumps({"out": str(args.out), "size": [image.shape[1], image.shape[0]], "steps": config.steps,
                      "style_cost": [first["style"], last["style"]], "content_cost": [first["content"], last["content"]]}))
    return 0


def _check_images(*named: tuple[str, str | Path]) -> None:
    """Each input is a file, so that a mistyped path fails before the models load."""
    for what, path in named:
        if not Path(path).is_file():
            raise BadInputError(f"{what} {path}: no such file")


def _cmd_train_style(args: argparse.Namespace) -> int:
    from ..images import load_image
    from ..progress import Progress

    config = from_args(TrainConfig, args)  # bad options fail here, before torch loads
    if args.out.exists() and (args.out / "checkpoint.pt").exists() and not args.resume:
        raise BadInputError(f"--out {args.out} holds a checkpoint: pass --resume to continue it, or choose a new folder")
    _check_images(("--style", args.style), *((("--sample", args.sample),) if args.sample else ()))
    if not args.content_dir.is_dir():
        raise BadInputError(f"--content-dir {args.content_dir}: not a folder of photos")
    if config.init_from and not Path(config.init_from).is_file():
        raise BadInputError(f"--init-from {config.init_from}: no such checkpoint or safetensors file")
    try:
        from facestyle.export.style.train import StyleTrainer, content_files, device_description
        from facestyle.export.style.vgg import vgg16_from_onnx
    except ImportError as exc:
        raise export_extra_missing("train-style", exc) from None
    files = content_files(args.content_dir)
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


class TileProgress:
    """A progress bar over a large image's tiles, made once the tiles are counted (a small image has none)."""

    def __init__(self, label: str):
        self.label, self.bar = label, None

    def __call__(self, done: int, total: int) -> None:
        from ..progress import Progress

        if self.bar is None:
            self.bar = Progress(total, self.label)
        if done:
            self.bar.update()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _style_options(args: argparse.Namespace) -> dict:
    return {"strength": args.strength, "max_side": args.max_side, "stroke_scale": args.stroke_scale,
            "preserve_colour": args.preserve_colour, "keep_faces": args.keep_faces, "face_strength": args.face_strength}


def _load_stylizer(args: argparse.Namespace):
    from ..style.stylizer import Stylizer

    return Stylizer.from_engines(args.style, args.engines, args.precision, backend=args.backend, tile=args.tile,
                                 overlap=args.overlap, working_side=args.working_side)


def _cmd_stylize(args: argparse.Namespace) -> int:
    from ..images import image_format_for, load_image, save_image

    if Path(args.input).is_dir():
        return _stylize_folder(args)
    image_format_for(args.out)
    check_output(args.out, (args.input,), args.overwrite)  # before the model is loaded
    stylizer = _load_stylizer(args)
    with TileProgress(f"stylize {args.input}") as on_tile:
        out = stylizer.stylize(load_image(args.input), on_tile=on_tile, **_style_options(args))
    save_image(out, args.out)
    print(json.dumps({"out": str(args.out), "style": stylizer.name, "precision": stylizer.precision,
                      "size": [out.shape[1], out.shape[0]], "tiled": max(out.shape[:2]) > stylizer.tile}))
    return 0


def _folder_plan(source: Path, target: Path) -> list[tuple[Path, Path]]:
    """(photo, output) for every image directly in ``source``; the output folder may not be, nor be inside, it."""
    from .io import IMAGE_SUFFIXES

    if target.resolve() == source.resolve() or source.resolve() in target.resolve().parents:
        raise BadInputError(f"{target}: the output folder is {source} or inside it; choose a folder outside it, "
                            "so that no output can replace a photo")
    photos = [f for f in sorted(source.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if not photos:
        raise BadInputError(f"{source}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
    return [(photo, target / photo.name) for photo in photos]


def _stylize_folder(args: argparse.Namespace) -> int:
    """Every image of the folder: one JSON line per photo (written, skipped or its error), the batch going on."""
    from ..images import load_image, save_image
    from ..progress import Progress
    from .io import error_entry

    plan = _folder_plan(Path(args.input), args.out)
    check_output(args.out, (), folder=True)
    stylizer = _load_stylizer(args)
    counts = {"written": 0, "skipped": 0, "failed": 0}
    with Progress(len(plan), f"stylize {args.input}") as bar:
        for photo, out in plan:
            if out.exists() and not args.overwrite:
                entry, outcome = {"file": str(photo), "skipped": f"{out} exists (pass --overwrite to replace it)"}, "skipped"
            else:
                try:
                    save_image(stylizer.stylize(load_image(photo), **_style_options(args)), out)
                    entry, outcome = {"file": str(photo), "out": str(out)}, "written"
                except (FacestyleError, OSError) as error:
                    entry, outcome = error_entry(str(photo), error), "failed"
                    print(f"facestyle stylize: error: {entry['error']}", file=sys.stderr)
            counts[outcome] += 1
            print(json.dumps(entry), flush=True)
            bar.update()
    print(json.dumps({"summary": counts, "style": stylizer.name, "out": str(args.out)}))
    return 2 if counts["failed"] else 0


def _add_look_options(p: argparse.ArgumentParser) -> None:
    from ..style.looks import FACE_STRENGTH
    from ..style.resolution import STROKE_SCALES, WORKING_SIDE

    p.add_argument("--stroke-scale", type=number_between(*STROKE_SCALES), default=1.0,
                   help=f"strokes this many times larger relative to the picture ({STROKE_SCALES[0]:g} to "
                        f"{STROKE_SCALES[1]:g}; default 1)")
    p.add_argument("--working-side", type=whole_number(16), default=WORKING_SIDE,
                   help=f"larger photos are stylised at this longer side and brought back to full size, so strokes "
                        f"keep their size relative to the picture (default {WORKING_SIDE})")
    p.add_argument("--preserve-colour", "--preserve-color", action="store_true",
                   help="keep the photo's colours: only the stylised luminance is used")
    p.add_argument("--keep-faces", action="store_true",
                   help="stylise faces gently (needs the face engines: `facestyle build`)")
    p.add_argument("--face-strength", type=number_between(0, 1), default=FACE_STRENGTH,
                   help=f"with --keep-faces, the style's share inside a face (default {FACE_STRENGTH})")


def _register_train_style(subparsers) -> None:
    p = subparsers.add_parser("train-style", help="the fast method: train a feed-forward network for one style")
    p.add_argument("--style", required=True, help="the style image (a painting)")
    p.add_argument("--content-dir", required=True, type=Path, help="folder of training photos (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint, loss.jsonl, samples/, weights")
    p.add_argument("--name", help="style name (default: the style file's stem)")
    add_options(p, TrainConfig)
    p.add_argument("--sample", help="photo to stylise for the samples (default: the first content photo)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--device", help="what to write as the training device in the card (default: described)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train_style)


def register(subparsers) -> None:
    p = subparsers.add_parser("style-optimize", help="the slow method: optimise an image on the style cost (Gatys)")
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("out", type=Path)
    add_options(p, StyleOptimizeConfig)
    add_overwrite_option(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_style_optimize)

    p = subparsers.add_parser("styles", help="list the built styles (name, variant, precisions, training card)")
    add_engines_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_styles)

    p = subparsers.add_parser("stylize", help="apply a built style to a photo, or to every image of a folder")
    p.add_argument("input", help="a photo, or a folder of them (its images, not its subfolders)")
    p.add_argument("out", type=Path, help="the output image, or a folder for a folder's (created; outside the input)")
    p.add_argument("--style", required=True, help="style name (see `facestyle styles`)")
    p.add_argument("--strength", type=float, default=1.0, help="0 = the photo, 1 = full style (default 1)")
    p.add_argument("--max-side", type=int, help="downscale the photo first so its longer side is at most N")
    p.add_argument("--tile", type=int, default=768, help="photos larger than this are stylised in tiles (default 768)")
    p.add_argument("--overlap", type=int, default=128, help="tile overlap, blended with feathering (default 128)")
    _add_look_options(p)
    add_engines_option(p)
    add_precision_option(p, "style model variant")
    add_backend_option(p, help=None)
    add_overwrite_option(p)
    p.set_defaults(func=_cmd_stylize)

    _register_train_style(subparsers)
