"""The ``facestyle`` command. Every FacestyleError becomes exit code 2 and one line on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import BadImageError, FacestyleError, MissingDependencyError


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        from facestyle.export.build import build, format_table
    except ImportError as exc:
        raise MissingDependencyError(
            f"`facestyle build` needs the export extra ({exc.name} is missing): pip install 'facestyle[export]'"
        ) from None
    results = build(args.out, force=args.force, recognition_model=args.recognition_model,
                    detector_model=args.detector_model)
    print(format_table(results))
    if all(r.status == "up to date" for r in results):
        print("Nothing changed: every artifact is up to date (use --force to rebuild).")
    return 0


def _load_chip(path: str, size: tuple[int, int]):
    from .images import load_image

    chip = load_image(path)
    h, w = size
    if chip.shape[:2] != (h, w):
        raise BadImageError(
            f"{path}: aligned face chip must be {w}x{h} RGB (dlib get_face_chip, size {w}, padding 0.25), "
            f"got {chip.shape[1]}x{chip.shape[0]}"
        )
    return chip


def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from .face.embedder import FaceEmbedder

    if not args.aligned:
        raise FacestyleError("embed: face detection is not available yet; pass aligned 150x150 chips with --aligned")
    embedder = FaceEmbedder.from_engines(args.engines, precision=args.precision)
    chips = np.stack([_load_chip(p, embedder.input_size) for p in args.images])
    vectors = embedder.embed(chips)
    if args.json:
        out = [{"file": p, "embedding": [float(x) for x in v]} for p, v in zip(args.images, vectors)]
        print(json.dumps(out))
    else:
        for p, v in zip(args.images, vectors):
            print(f"{p}\t128-d embedding, norm {np.linalg.norm(v):.4f}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facestyle", description="Face verification and fast neural style, exported and deployed."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="convert the source weights and export validated ONNX artifacts")
    p.add_argument("--out", type=Path, default=Path("engines"), help="artifact folder (default: ./engines)")
    p.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    p.add_argument("--recognition-model", type=Path, help="path to dlib_face_recognition_resnet_model_v1.dat "
                   "(default: from the installed face_recognition_models package)")
    p.add_argument("--detector-model", type=Path, help="path to mmod_human_face_detector.dat (default: likewise)")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("embed", help="print 128-d face embeddings")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned 150x150 face chips")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    p.add_argument("--engines", type=Path, default=None, help="artifact folder (default: $FACESTYLE_ENGINES or ./engines)")
    p.add_argument("--precision", default="fp32", help="model variant (default: fp32)")
    p.set_defaults(func=_cmd_embed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except FacestyleError as exc:
        print(f"facestyle {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facestyle {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
