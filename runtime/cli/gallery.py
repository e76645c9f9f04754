"""``facestyle enroll``, ``identify`` and ``gallery``: the people a gallery file knows, and naming faces from it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BadInputError
from .common import add_model_options, open_analyzer, open_gallery
from .io import add_overwrite_option, positive_float

REFUSED = ("no face", "several faces")  # enrolment outcomes reported on stderr


def _cmd_enroll(args: argparse.Namespace) -> int:
    from ..face.gallery import enroll_photos

    analyzer, gallery = open_gallery(args, create=True)
    outcomes = enroll_photos(gallery, analyzer, args.name, args.images)
    for o in outcomes:
        detail = f" ({o.faces} faces: enrol from a photo of {args.name} alone)" if o.status == "several faces" else ""
        print(f"{o.file}: {o.status}{detail}", file=sys.stderr if o.status in REFUSED else sys.stdout)
    enrolled = sum(o.status in ("enrolled", "duplicate") for o in outcomes)
    print(f"{args.name}: {enrolled} of {len(outcomes)} photo(s) in {args.gallery}")
    return 0 if enrolled else 2


def _cmd_identify(args: argparse.Namespace) -> int:
    from .identify import identify_command

    return identify_command(args)


def _reembed(args: argparse.Namespace) -> int:
    from ..face.gallery import reembed

    analyzer = open_analyzer(args)
    made, problems = reembed(args.gallery, analyzer)
    for problem in problems:
        print(problem, file=sys.stderr)
    kept = "" if str(args.gallery).startswith("postgresql:") else "; old file kept as .bak"
    print(f"{args.gallery}: {made} embedding(s) re-made with {analyzer.embedder.identity.describe()}{kept}")
    return 0


def _list(gallery, args: argparse.Namespace) -> None:
    people = gallery.people()
    print(json.dumps([{"name": n, "photos": c} for n, c in people]) if args.json else
          "\n".join(f"{n}\t{c} photo(s)" for n, c in people) or "(empty)")


def _remove(gallery, args: argparse.Namespace) -> None:
    if not args.name:
        raise BadInputError("gallery remove: give the NAME of the person to remove")
    print(f"removed {args.name} ({gallery.remove(args.name)} embedding(s))")


def _export(gallery, args: argparse.Namespace) -> None:
    identity = gallery.identity
    print(json.dumps({"model": identity.model, "precision": identity.precision, "model_sha256": identity.sha256,
                      "records": gallery.records()}))


def _import(gallery, args: argparse.Namespace) -> None:
    from ..face.gallery import import_file

    if not args.name:
        raise BadInputError("gallery import: give the FILE (.json from gallery export, or .npz) to import")
    added, total = import_file(gallery, args.name)
    print(f"{args.gallery}: {added} of {total} embedding(s) imported from {args.name}")


ACTIONS = {"list": _list, "remove": _remove, "export": _export, "import": _import}  # these read the stored embeddings only


def _cmd_gallery(args: argparse.Namespace) -> int:
    from ..face.gallery import Gallery

    if args.action == "reembed":
        return _reembed(args)
    if args.action == "import":  # into a new or existing gallery of the current model
        _import(open_gallery(args, create=True)[1], args)
        return 0
    gallery = Gallery.open(args.gallery, Gallery.stored_identity(args.gallery), create=False)
    ACTIONS[args.action](gallery, args)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("enroll", help="enrol a person from one or more photos (one face each)")
    p.add_argument("--gallery", type=Path, required=True, help="gallery: a SQLite file (created if absent) or a postgresql://... URL")
    p.add_argument("name")
    p.add_argument("images", nargs="+")
    add_model_options(p)
    p.set_defaults(func=_cmd_enroll)

    p = subparsers.add_parser("identify", help="name every face of each photo from the gallery, or say 'unknown'")
    p.add_argument("--gallery", type=Path, required=True)
    p.add_argument("images", nargs="+", help="image files or folders (their images, recursively)")
    p.add_argument("--top-k", type=int, default=3, help="nearest people listed per face (default 3)")
    p.add_argument("--threshold", type=positive_float, help="distance threshold > 0 (default: the model manifest's)")
    p.add_argument("--annotate", type=Path, metavar="OUT.jpg",
                   help="draw boxes and names on the photo (one input) and write it here")
    add_overwrite_option(p)
    p.add_argument("--search", choices=["auto", "exact", "faiss"], default="auto",
                   help="exact search, a faiss HNSW index (extra 'faiss'), or auto (default: faiss from 2e5 embeddings)")
    p.add_argument("--json", action="store_true")
    add_model_options(p)
    p.set_defaults(func=_cmd_identify)

    p = subparsers.add_parser("gallery", help="list, remove, export, import (FILE.json|FILE.npz) or re-embed a gallery")
    p.add_argument("action", choices=[*ACTIONS, "reembed"])
    p.add_argument("name", nargs="?", help="person to remove, or FILE to import")
    p.add_argument("--gallery", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    add_model_options(p)
    p.set_defaults(func=_cmd_gallery)
