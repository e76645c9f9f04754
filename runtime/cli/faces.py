"""``facestyle embed`` and ``facestyle verify``: faces, landmarks and embeddings of photos or aligned chips."""

from __future__ import annotations

import argparse
import json

from ..errors import BadImageError
from .common import add_model_options, open_analyzer


def _load_chip(path: str, size: tuple[int, int]):
    from ..images import load_image

    chip = load_image(path)
    h, w = size
    if chip.shape[:2] != (h, w):
        raise BadImageError(
            f"{path}: aligned face chip must be {w}x{h} RGB (dlib get_face_chip, size {w}, padding 0.25), "
            f"got {chip.shape[1]}x{chip.shape[0]}"
        )
    return chip


def _embed_chips(args: argparse.Namespace) -> list[dict]:
    import numpy as np

    from ..face.embedder import FaceEmbedder

    embedder = FaceEmbedder.from_engines(args.engines, precision=args.precision, backend=args.backend)
    chips = np.stack([_load_chip(p, embedder.input_size) for p in args.images])
    return [{"file": p, "embedding": [float(x) for x in v]} for p, v in zip(args.images, embedder.embed(chips))]


def _embed_photos(args: argparse.Namespace) -> list[dict]:
    analyzer = open_analyzer(args)
    return [{"file": path, "faces": [f.to_json() for f in analyzer.faces(path)]} for path in args.images]


def _print_embeddings(out: list[dict]) -> None:
    import numpy as np

    for item in out:
        if "embedding" in item:
            print(f"{item['file']}\t128-d embedding, norm {np.linalg.norm(item['embedding']):.4f}")
        else:
            boxes = ", ".join(str(f["box"]) for f in item["faces"]) or "no face"
            print(f"{item['file']}\t{len(item['faces'])} face(s): {boxes}")


def _cmd_embed(args: argparse.Namespace) -> int:
    out = _embed_chips(args) if args.aligned else _embed_photos(args)
    if args.json:
        print(json.dumps(out))
    else:
        _print_embeddings(out)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    result = open_analyzer(args).verify(args.a, args.b, threshold=args.threshold)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, **result.to_json()}))
        return 0
    for note in result.notes:
        print(f"note: {note}")
    verdict = "SAME person" if result.same else "DIFFERENT people"
    print(f"{verdict}: distance {result.distance:.4f} {'<=' if result.same else '>'} threshold {result.threshold} "
          f"({result.threshold_source})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("embed", help="find faces and print their boxes, landmarks and 128-d embeddings")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned 150x150 face chips: embed them as they are")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    add_model_options(p)
    p.set_defaults(func=_cmd_embed)

    p = subparsers.add_parser("verify", help="are the (largest) faces of two photos the same person?")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--threshold", type=float, help="distance threshold (default: the model manifest's)")
    p.add_argument("--json", action="store_true")
    add_model_options(p)
    p.set_defaults(func=_cmd_verify)
