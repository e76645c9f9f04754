"""``facestyle embed`` and ``facestyle verify``: faces, landmarks and embeddings of photos or aligned chips."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BadImageError, BadInputError
from .common import add_model_options, open_analyzer
from .io import NO_FACE_HINT, check_output, chip_names, expand_inputs, per_input, positive_float, report_errors


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
    loaded = per_input(args.images, lambda p: {"file": p, "chip": _load_chip(p, embedder.input_size)}, "reading")
    good = [item for item in loaded if "chip" in item]
    if good:  # the good chips in one batch; a failing one keeps its place as {"file", "error"}
        for item, vector in zip(good, embedder.embed(np.stack([item.pop("chip") for item in good]))):
            item["embedding"] = [float(x) for x in vector]
    return loaded


def _embed_photos(args: argparse.Namespace) -> list[dict]:
    analyzer = open_analyzer(args)
    return per_input(args.images, lambda path: {"file": path, "faces": [f.to_json() for f in analyzer.faces(path)]},
                     "embedding")


def hint_no_face(results: list[dict], upsample: int) -> None:
    """One stderr line when some input had no face and the detector ran without upsampling."""
    empty = [r["file"] for r in results if r.get("faces") == []]
    if empty and upsample == 0:
        print(f"facestyle: note: {', '.join(empty)}: {NO_FACE_HINT}", file=sys.stderr)


def _print_embeddings(out: list[dict]) -> None:
    import numpy as np

    for item in out:
        if "error" in item:
            continue  # on stderr
        if "embedding" in item:
            print(f"{item['file']}\t128-d embedding, norm {np.linalg.norm(item['embedding']):.4f}")
        else:
            boxes = ", ".join(str(f["box"]) for f in item["faces"]) or "no face"
            print(f"{item['file']}\t{len(item['faces'])} face(s): {boxes}")


def _cmd_embed(args: argparse.Namespace) -> int:
    args.images = expand_inputs(args.images)
    out = _embed_chips(args) if args.aligned else _embed_photos(args)
    # Each failed input: in its place in the JSON, and one line on stderr in either mode.
    print(json.dumps(out)) if args.json else _print_embeddings(out)
    code = report_errors("embed", out)
    if not args.aligned:
        hint_no_face(out, args.upsample)
    return code


def _cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0: the same person, 1: different people, 2: an error (like cmp)."""
    _check_verify_arguments(args)
    analyzer = open_analyzer(args)
    head = _head(analyzer) if args.head else None
    result = analyzer.verify(args.a, args.b, threshold=args.threshold)
    report = {"a": args.a, "b": args.b, **result.to_json()}
    same = result.same
    if head is not None:  # the head decides; the distance is reported beside it
        probability = float(head.probability(*(f.embedding[None] for f in result.compared))[0])
        same = probability >= head.threshold
        report.update(same=same, decided_by=f"similarity head ({head.form}), P(same) >= {head.threshold}",
                      head_probability=round(probability, 6))
    code = 0 if same else 1
    if args.json:
        print(json.dumps(report))
        return code
    for note in result.notes:
        print(f"note: {note}")
    verdict = "SAME person" if same else "DIFFERENT people"
    if head is not None:
        print(f"{verdict}: P(same) {report['head_probability']:.4f} by the similarity head ({head.form}); "
              f"distance {result.distance:.4f}, threshold {result.threshold}")
        return code
    print(f"{verdict}: distance {result.distance:.4f} {'<=' if result.same else '>'} threshold {result.threshold} "
          f"({result.threshold_source})")
    return code


def _check_verify_arguments(args: argparse.Namespace) -> None:
    """What can be told wrong from the arguments alone, before the models load."""
    if args.head and args.model is None:
        raise BadInputError("--head: needs --model RUN, a `facestyle train-embedding` run with a similarity head "
                            "(dlib's model has none)")
    for photo in (args.a, args.b):
        if not Path(photo).is_file():
            raise BadImageError(f"{photo}: {'is a folder, not a photo' if Path(photo).is_dir() else 'no such file'}")


def _head(analyzer):
    from ..face.head import SimilarityHead

    return SimilarityHead.of_embedder(analyzer.embedder)


def _chip_path(out_dir: Path, name: str, i: int, inputs: set[Path]) -> Path:
    """Where chip ``i`` of a photo goes; never onto one of the inputs (--out may be the photos' own folder)."""
    path = out_dir / f"{name}-{i}.png"
    if path.resolve() in inputs:
        raise BadInputError(f"{path}: the chip's name is that of an input photo, which is never overwritten; "
                            "choose another --out")
    return path


def _cmd_chips(args: argparse.Namespace) -> int:
    """The aligned face chips of each photo, as <folder>-<stem>-<i>.png in --out (see chip_names; each written
    atomically)."""
    from ..images import load_image, save_image

    files = expand_inputs(args.images)
    out_dir = check_output(args.out, folder=True)
    analyzer = open_analyzer(args)
    names, inputs = chip_names(files), {Path(f).resolve() for f in files}

    def chips_of(path: str) -> dict:
        pixels = load_image(path)
        boxes = analyzer.detector.detect(pixels, upsample=analyzer.upsample).boxes
        _, chips = analyzer.chips(pixels, boxes)
        targets = [_chip_path(out_dir, names[path], i, inputs) for i in range(len(chips))]
        written = [str(save_image(chip, target)) for chip, target in zip(chips, targets)]
        return {"file": path, "faces": [{"box": [int(v) for v in box], "chip": w} for box, w in zip(boxes, written)]}

    results = per_input(files, chips_of, "chips")
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            if "faces" in r:
                print(f"{r['file']}\t{len(r['faces'])} chip(s)" + "".join(f"\t{f['chip']}" for f in r["faces"]))
    code = report_errors("chips", results)
    hint_no_face(results, args.upsample)
    return code


def register(subparsers) -> None:
    p = subparsers.add_parser("embed", help="find faces and print their boxes, landmarks and 128-d embeddings")
    p.add_argument("images", nargs="+", help="image files or folders (their images, recursively)")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned 150x150 face chips: embed them as they are")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    add_model_options(p)
    p.set_defaults(func=_cmd_embed)

    p = subparsers.add_parser("verify", help="are the (largest) faces of two photos the same person?")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--threshold", type=positive_float, help="distance threshold > 0 (default: the model manifest's)")
    p.add_argument("--head", action="store_true",
                   help="decide by the trained model's similarity head (with --model RUN); the distance is reported too")
    p.add_argument("--json", action="store_true")
    add_model_options(p)
    p.set_defaults(func=_cmd_verify)

    p = subparsers.add_parser("chips", help="write the aligned 150x150 face chips of photos as PNGs, "
                                            "<folder>-<stem>-<i>.png (~2, ~3 added where two photos would share a name)")
    p.add_argument("images", nargs="+", help="image files or folders (their images, recursively)")
    p.add_argument("--out", required=True, type=Path, help="folder for the chips (created if absent)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    add_model_options(p)
    p.set_defaults(func=_cmd_chips)
