"""``facestyle gallery unknowns`` and ``facestyle gallery name CLUSTER NAME``: faces nobody has named yet."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..errors import BadInputError, GalleryModelMismatchError
from .common import shown, trained_engines, with_reembed_precision
from .io import check_output


def _cut(args: argparse.Namespace, gallery) -> float:
    """--cut, else the default for the pair threshold of the embedding model the options name (which must be
    the gallery's)."""
    from ..face.gallery.unknowns import default_cut

    if args.cut is not None:
        return args.cut
    from ..face.embedder import FaceEmbedder

    embedder = FaceEmbedder.from_engines(trained_engines(args) or args.engines, precision=args.precision,
                                         backend=args.backend)
    try:
        if embedder.identity != gallery.identity:
            raise GalleryModelMismatchError(with_reembed_precision(
                f"{shown(args.gallery)}: its embeddings come from {gallery.identity.describe()}, not "
                f"{embedder.identity.describe()}; give the options of the model that made it", args))
        return default_cut(embedder.threshold)
    finally:
        embedder.close()


def _open(args: argparse.Namespace, write: bool):
    from ..face.gallery import Gallery

    return Gallery.open(args.gallery, Gallery.stored_identity(args.gallery), create=False, write=write)


def _line(cluster) -> str:
    when = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))  # noqa: E731
    return (f"{cluster.id}\t{cluster.tracks} track(s)\t{len(cluster.faces)} face(s)\t"
            f"first {when(cluster.first_seen)}Z\tlast {when(cluster.last_seen)}Z\t{', '.join(cluster.sources)}")


def list_unknowns(args: argparse.Namespace) -> int:
    from ..face.gallery import unknowns
    from ..face.gallery.contact_sheet import contact_sheet
    from ..manifest import atomic_write_bytes

    if args.sheet is not None:
        check_output(args.sheet, (args.gallery,))
    gallery = _open(args, write=False)
    try:
        found = unknowns.clusters(gallery, _cut(args, gallery))
        if args.sheet is not None:
            ids = [f.id for c in found[:40] for f in c.faces[:6]]
            atomic_write_bytes(args.sheet, contact_sheet(found, unknowns.chips(gallery.store, ids)))
    finally:
        gallery.close()
    if args.json:
        print(json.dumps([c.to_json() for c in found]))
    else:
        print("\n".join(_line(c) for c in found) or "(no unknown faces kept)")
    if args.sheet is not None:
        print(f"{shown(args.gallery)}: contact sheet of {min(len(found), 40)} cluster(s) written to {args.sheet}",
              file=sys.stderr)
    return 0


def name_cluster(args: argparse.Namespace) -> int:
    from ..face.gallery import unknowns

    if args.name is None or args.person is None:
        raise BadInputError("name: give the CLUSTER id (from `facestyle gallery unknowns`) and the person's NAME")
    gallery = _open(args, write=True)
    try:
        done = unknowns.name_cluster(gallery, _cut(args, gallery), args.name, args.person, add=args.add)
    finally:
        gallery.close()
    print(json.dumps(done) if args.json else
          f"{shown(args.gallery)}: {done['enrolled']} face(s) of cluster {done['cluster']} ({done['tracks']} track(s)) "
          f"enrolled as {done['person']}")
    return 0


COMMANDS = {"unknowns": list_unknowns, "name": name_cluster}


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of ``gallery unknowns`` and ``gallery name`` (the other actions refuse them)."""
    from .io import positive_float

    p.add_argument("person", nargs="?", metavar="PERSON", help="name: the name to give the cluster")
    p.add_argument("--sheet", metavar="OUT.jpg", help="unknowns: write a contact sheet (a row per cluster) here")
    p.add_argument("--cut", type=positive_float,
                   help="unknowns, name: the distance at which clusters stop merging (default: 0.9 x the embedding "
                        "model's pair threshold)")
    p.add_argument("--add", action="store_true", help="name: add the faces to a person already enrolled")


def check_options(args: argparse.Namespace) -> None:
    """An option of these actions given to another is refused, before anything is opened."""
    if args.action in COMMANDS:
        return
    given = [flag for flag, value in (("PERSON", args.person), ("--sheet", args.sheet),
                                      ("--cut", args.cut), ("--add", args.add or None)) if value is not None]
    if given:
        raise BadInputError(f"{args.action}: {given[0]} is for `gallery unknowns` or `gallery name` only")
