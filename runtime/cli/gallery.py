"""``facestyle enroll``, ``identify`` and ``gallery``: the people a gallery file knows, and naming faces from it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BadInputError
from .common import add_model_options, open_analyzer, open_gallery, shown
from .io import (
    IMAGE_SUFFIXES,
    add_overwrite_option,
    check_output,
    expand_inputs,
    positive_float,
    positive_int,
    report_errors,
)
from .unknowns import COMMANDS as UNKNOWNS_COMMANDS, add_options as add_unknowns_options


def _people_folder(folder: Path) -> list[tuple[str, str]]:
    """``PEOPLE/<name>/<photos>`` -> (name, photo) pairs; photos outside a person's folder are refused before any work."""
    if not folder.is_dir():
        raise BadInputError(f"--folder {folder}: not a folder (expected PEOPLE/<name>/<photos>)")
    loose = [f for f in sorted(folder.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        raise BadInputError(f"--folder {folder}: {loose[0].name} is not in a person's folder "
                            f"(put each person's photos in {folder}/<name>/)")
    pairs = [(person.name, f) for person in sorted(p for p in folder.iterdir() if p.is_dir())
             for f in expand_inputs([str(person)])]
    if not pairs:
        raise BadInputError(f"--folder {folder}: no photos in its subfolders (expected PEOPLE/<name>/<photos>)")
    return pairs


def _enrol_items(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.folder is not None:
        if args.name or args.images:
            raise BadInputError("enroll: give either --folder PEOPLE or NAME IMAGE..., not both")
        return _people_folder(args.folder)
    if not args.name or not args.images:
        raise BadInputError("enroll: give NAME IMAGE... (or --folder PEOPLE with one subfolder per person)")
    return [(args.name, f) for f in expand_inputs(args.images)]


_HINTS = {"another person": "; pass --allow-duplicate to enrol it as {person} too",
          "poor quality": "; pass --allow-poor to enrol it anyway"}


def _outcome_entry(o) -> dict:
    entry = {"file": o.file, "person": o.person, "status": o.status}
    if o.quality is not None:
        entry["quality"] = o.quality.to_json()
    if o.status == "unreadable" and o.detail.startswith(f"{o.file}: "):  # the decoder's message, naming the file
        entry["error"] = o.detail
    elif o.refused:
        entry["error"] = f"{o.file}: {o.status} ({o.detail}{_HINTS.get(o.status, '').format(person=o.person)})"
    else:
        entry["box"] = list(o.box)
    return entry


def _accepted_line(entry: dict) -> str:
    quality = f", quality {entry['quality']['score']:.2f}" if "quality" in entry else ""
    return f"{entry['file']}: {entry['status']} ({entry['person']}){quality}"


def _enrol_summary(result, args) -> str:
    enrolled = [o for o in result if o.status == "enrolled"]
    people = len({o.person for o in enrolled})
    refused = len(result.refused)
    if not result.committed and refused:
        return (f"{shown(args.gallery)}: nothing enrolled; {refused} of {len(result)} photo(s) refused "
                "(fix or leave them out, or pass --skip-bad to enrol the others)")
    duplicates = sum(o.status == "duplicate" for o in result)
    if not enrolled and not refused:
        return f"{shown(args.gallery)}: nothing new ({duplicates} photo(s) already enrolled)"
    parts = [f"{shown(args.gallery)}: {len(enrolled)} photo(s) of {people} {'person' if people == 1 else 'people'} enrolled"]
    if duplicates:
        parts.append(f"{duplicates} already there")
    if refused:
        parts.append(f"{refused} refused and skipped")
    return "; ".join(parts)


def _cmd_enroll(args: argparse.Namespace) -> int:
    from ..face.gallery import Gallery, enroll_people

    items = _enrol_items(args)
    for name in dict.fromkeys(person for person, _ in items):
        Gallery.check_name(name)  # a name the gallery refuses fails now, before the models load
    analyzer, gallery = open_gallery(args, create=True)
    try:
        result = enroll_people(gallery, analyzer, items, skip_bad=args.skip_bad, allow_duplicate=args.allow_duplicate,
                               progress=True, allow_poor=args.allow_poor)
    finally:
        gallery.close()
    entries = [_outcome_entry(o) for o in result]
    if args.json:
        print(json.dumps(entries))
    elif args.folder is None and (args.skip_bad or not result.refused):
        for entry in entries:
            if "error" not in entry:
                print(_accepted_line(entry))
    code = report_errors("enroll", entries)
    # Under --json, stdout carries the JSON alone; the summary is for the person at the terminal.
    print(_enrol_summary(result, args), file=sys.stderr if code or args.json else sys.stdout)
    return code


def _cmd_identify(args: argparse.Namespace) -> int:
    from .identify import identify_command

    return identify_command(args)


def _reembed(args: argparse.Namespace) -> int:
    from ..face.gallery import ReembedError, reembed

    analyzer = open_analyzer(args)
    try:
        made = reembed(args.gallery, analyzer, progress=True)
    except ReembedError as exc:
        for problem in exc.problems:
            print(f"facestyle gallery reembed: error: {problem}", file=sys.stderr)
        raise
    from ..face.gallery.postgres import is_url

    kept = "" if is_url(args.gallery) else "; old file kept as .bak"
    print(f"{shown(args.gallery)}: {made} embedding(s) re-made with {analyzer.embedder.identity.describe()}{kept}")
    return 0


def _list(gallery, args: argparse.Namespace) -> None:
    people = gallery.people()
    print(json.dumps([{"name": n, "photos": c} for n, c in people]) if args.json else
          "\n".join(f"{n}\t{c} photo(s)" for n, c in people) or "(empty)")


def _remove(gallery, args: argparse.Namespace) -> None:
    print(f"removed {args.name} ({gallery.remove(args.name)} embedding(s))")


def _export(gallery, args: argparse.Namespace) -> None:
    """To FILE, written whole or not at all (temp file, then rename); to stdout without one."""
    from ..face.gallery.bulk import export_records
    from ..manifest import atomic_write_bytes

    identity, records = gallery.identity, export_records(gallery.records())
    text = json.dumps({"model": identity.model, "precision": identity.precision, "model_sha256": identity.sha256,
                       "records": records})
    if args.name is None:
        print(text)
        return
    atomic_write_bytes(args.name, (text + "\n").encode())
    print(f"{shown(args.gallery)}: {len(records)} embedding(s) exported to {args.name}", file=sys.stderr)


def _import(gallery, args: argparse.Namespace) -> None:
    from ..face.gallery import import_file

    added, total = import_file(gallery, args.name)
    print(f"{shown(args.gallery)}: {added} of {total} embedding(s) imported from {args.name}")


ACTIONS = {"list": _list, "remove": _remove, "export": _export, "import": _import}  # these read the stored embeddings only
NAME_ARGUMENT = {"remove": "NAME of the person to remove", "import": "FILE (.json from gallery export, or .npz) to import",
                 "export": None, "name": None}  # None: optional; the actions not listed take none


def _check_action_arguments(args: argparse.Namespace) -> None:
    """The action's NAME/FILE, checked before any gallery or model is opened (or a new gallery created)."""
    if args.action not in NAME_ARGUMENT and args.name is not None:
        raise BadInputError(f"{args.action}: takes no NAME or FILE, got {args.name!r}")
    if NAME_ARGUMENT.get(args.action) and args.name is None:
        raise BadInputError(f"{args.action}: give the {NAME_ARGUMENT[args.action]}")
    if args.action == "import" and not Path(args.name).is_file():
        what = "is a folder" if Path(args.name).is_dir() else "no such file"
        raise BadInputError(f"{args.name}: {what} (expected the .json from `gallery export`, or a .npz)")
    if args.action == "export" and args.name is not None:
        if Path(args.name).suffix.lower() != ".json":
            raise BadInputError(f"{args.name}: the export is JSON: give a .json file name (what `gallery import` reads)")
        check_output(args.name, (args.gallery,))


def _cmd_gallery(args: argparse.Namespace) -> int:
    from ..face.gallery import Gallery
    from .unknowns import COMMANDS, check_options

    check_options(args)
    _check_action_arguments(args)
    if args.action in COMMANDS:
        return COMMANDS[args.action](args)
    if args.action == "reembed":
        return _reembed(args)
    if args.action == "import":  # into a new or existing gallery of the current model
        gallery = open_gallery(args, create=True)[1]
    else:
        gallery = Gallery.open(args.gallery, Gallery.stored_identity(args.gallery), create=False,
                               write=args.action == "remove")
    try:
        ACTIONS[args.action](gallery, args)
    finally:
        gallery.close()  # SQLite then folds its WAL back and removes it: a reader leaves no file behind
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("enroll", help="enrol a person from photos (one face each), or everyone in --folder; "
                                             "all or nothing unless --skip-bad")
    p.add_argument("--gallery", required=True, help="gallery: a SQLite file (created if absent) or a postgresql://... URL")
    p.add_argument("name", nargs="?", help="the person's name")
    p.add_argument("images", nargs="*", help="their photos (files or folders), each showing them alone")
    p.add_argument("--folder", type=Path, metavar="PEOPLE",
                   help="enrol PEOPLE/<name>/<photos> for every subfolder, in one transaction")
    p.add_argument("--skip-bad", action="store_true", help="enrol the good photos and report the others (default: all or nothing)")
    p.add_argument("--allow-duplicate", action="store_true", help="enrol a photo already enrolled under another name")
    p.add_argument("--allow-poor", action="store_true",
                   help="enrol a face of poor quality too (blurred, small or turned away; refused by default)")
    p.add_argument("--json", action="store_true")
    add_model_options(p)
    p.set_defaults(func=_cmd_enroll)

    p = subparsers.add_parser("identify", help="name every face of each photo from the gallery, or say 'unknown'")
    p.add_argument("--gallery", required=True, help="gallery: a SQLite file or a postgresql://... URL")
    p.add_argument("images", nargs="+", help="image files or folders (their images, recursively)")
    p.add_argument("--top-k", type=positive_int, default=3, help="nearest people listed per face (default 3)")
    p.add_argument("--threshold", type=positive_float, help="distance threshold > 0 (default: the model manifest's)")
    p.add_argument("--annotate", type=Path, metavar="OUT.jpg",
                   help="draw boxes and names on the photo (one input) and write it here")
    add_overwrite_option(p)
    p.add_argument("--search", choices=["auto", "exact", "faiss"], default="auto",
                   help="exact search, a faiss HNSW index (extra 'faiss'), or auto (default: faiss from 2e5 embeddings)")
    p.add_argument("--json", action="store_true")
    add_model_options(p)
    p.set_defaults(func=_cmd_identify)

    p = subparsers.add_parser("gallery", help="list, remove NAME, export [FILE.json], import FILE.json|FILE.npz, "
                                              "re-embed a gallery, list the unknown faces kept (unknowns [--sheet "
                                              "OUT.jpg]) or name a cluster of them (name CLUSTER PERSON)")
    p.add_argument("action", choices=[*ACTIONS, "reembed", *UNKNOWNS_COMMANDS])
    p.add_argument("name", nargs="?", metavar="NAME|FILE|CLUSTER",
                   help="remove: the person; import: the FILE to import; export: the FILE.json to write (default: "
                        "stdout); name: the CLUSTER id")
    add_unknowns_options(p)
    p.add_argument("--gallery", required=True, help="gallery: a SQLite file or a postgresql://... URL (kept as typed)")
    p.add_argument("--json", action="store_true")
    add_model_options(p)
    p.set_defaults(func=_cmd_gallery)
