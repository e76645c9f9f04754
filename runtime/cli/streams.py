"""``facestyle watch`` and ``facestyle stylize-video``: faces named, or a style applied, frame by frame."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BadInputError
from .common import (
    add_backend_option,
    add_engines_option,
    add_model_options,
    add_precision_option,
    open_analyzer,
    open_gallery,
)
from .io import add_overwrite_option, check_output, number_between, positive_float, positive_int


def _frames_to_show(source, max_frames: int | None) -> int:
    """The progress bar's length: the video's frame count or --max-frames, whichever is smaller; 0 (a camera): no bar."""
    return min(filter(None, (source.frame_count, max_frames)), default=0)


def _check_source(source: str) -> None:
    """A video file that is not there fails before the models load (a camera index or a URL is tried when opened)."""
    if not source.strip().isdigit() and "://" not in source and not Path(source).is_file():
        what = "is a folder" if Path(source).is_dir() else "no such file"
        raise BadInputError(f"{source}: {what} (expected a video file, or a camera index 0, 1, ...)")


def _open_json_lines(target: str | None):
    return sys.stdout if target == "-" else (open(target, "w") if target else None)


def _cmd_watch(args: argparse.Namespace) -> int:
    from ..face.watch import watch
    from ..progress import Progress
    from ..video import open_source

    inputs = (args.source,) + ((args.gallery,) if args.gallery else ())
    for output in (args.out, None if args.json_lines in (None, "-") else args.json_lines):
        if output is not None:
            check_output(output, inputs, args.overwrite)  # before the models or the source are opened
    _check_source(args.source)
    analyzer, gallery = open_gallery(args, create=False, write=False) if args.gallery else (open_analyzer(args), None)
    source = open_source(args.source)  # opened once: its frame count sizes the progress bar
    lines = _open_json_lines(args.json_lines)
    try:
        with Progress(_frames_to_show(source, args.max_frames), "watching", enabled=not args.quiet) as bar:
            summary = watch(source, analyzer, gallery, out=args.out, json_lines=lines, threshold=args.threshold,
                            max_frames=args.max_frames, every=args.every, progress=bar)
    finally:
        if lines not in (None, sys.stdout):
            lines.close()
    if summary.get("note"):
        print(f"facestyle watch: note: {summary['note']}", file=sys.stderr)
    # With --json-lines -, stdout carries only the per-frame lines; the summary goes to stderr.
    print(json.dumps(summary), file=sys.stderr if args.json_lines == "-" else sys.stdout)
    return 0


def _cmd_stylize_video(args: argparse.Namespace) -> int:
    from ..progress import Progress
    from ..style.stylizer import Stylizer
    from ..style.video import stylize_video
    from ..video import open_source

    check_output(args.out, (args.input,), args.overwrite)  # before the model or the source are opened
    _check_source(args.input)
    stylizer = Stylizer.from_engines(args.style, args.engines, args.precision, backend=args.backend)
    source = open_source(args.input)
    with Progress(_frames_to_show(source, args.max_frames), f"stylising ({stylizer.name})", enabled=not args.quiet) as bar:
        summary = stylize_video(source, args.out, stylizer, smooth=args.smooth, strength=args.strength,
                                max_side=args.max_side, max_frames=args.max_frames, progress=bar)
    if summary.get("note"):
        print(f"facestyle stylize-video: note: {summary['note']}", file=sys.stderr)
    print(json.dumps({"out": str(args.out), "style": stylizer.name, "precision": stylizer.precision, **summary}))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("watch", help="find and name the faces of a camera or video, frame by frame")
    p.add_argument("--source", required=True, help="a camera index (0, 1, ...) or a video file")
    p.add_argument("--gallery",
                   help="gallery (a SQLite file or a postgresql://... URL) to name the faces from; without it faces are boxed")
    p.add_argument("--out", type=Path, help="write an annotated video (boxes, names, distances, fps) here (.mp4)")
    p.add_argument("--json-lines", metavar="FILE|-", help="one JSON object per analysed frame, to FILE or stdout (-)")
    p.add_argument("--max-frames", type=positive_int, help="stop after N frames (a camera otherwise runs until Ctrl-C)")
    p.add_argument("--every", type=positive_int, default=1,
                   help="analyse one frame in N, the others show the last faces (default 1)")
    p.add_argument("--threshold", type=positive_float, help="distance threshold > 0 (default: the model manifest's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overwrite_option(p)
    add_model_options(p)
    p.set_defaults(func=_cmd_watch)

    p = subparsers.add_parser("stylize-video", help="apply a built style to every frame of a video, with temporal smoothing")
    p.add_argument("input", help="a video file (or a camera index)")
    p.add_argument("out", type=Path, help="the stylised video (.mp4), written only once complete")
    p.add_argument("--style", required=True, help="style name (see `facestyle styles`)")
    p.add_argument("--smooth", type=number_between(0, 1, high_included=False), default=0.0,
                   help="0 <= S < 1: motion-aware smoothing against flicker, e.g. 0.8 (default 0: none)")
    p.add_argument("--strength", type=number_between(0, 1), default=1.0, help="0 = the video, 1 = full style (default 1)")
    p.add_argument("--max-side", type=positive_int, help="downscale the frames first so their longer side is at most N")
    p.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    add_engines_option(p)
    add_precision_option(p, "style model variant")
    add_backend_option(p, help=None)
    add_overwrite_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_stylize_video)
