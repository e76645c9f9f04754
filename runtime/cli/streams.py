"""``facestyle watch`` and ``facestyle stylize-video``: faces named, or a style applied, frame by frame."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from ..errors import BadInputError
from ..face.quality import DEFAULT_MIN_QUALITY
from .common import (
    add_backend_option,
    add_engines_option,
    add_model_options,
    add_precision_option,
    open_analyzer,
    open_gallery,
)
from .io import add_overwrite_option, check_output, number_between, positive_float, positive_int, whole_number


def _frames_to_show(source, max_frames: int | None) -> int:
    """The progress bar's length: the video's frame count or --max-frames, whichever is smaller; 0 (a camera): no bar."""
    return min(filter(None, (source.frame_count, max_frames)), default=0)


def _check_source(source: str) -> None:
    """A video file that is not there fails before the models load (a camera index or a URL is tried when opened)."""
    if not source.strip().isdigit() and "://" not in source and not Path(source).is_file():
        what = "is a folder" if Path(source).is_dir() else "no such file"
        raise BadInputError(f"{source}: {what} (expected a video file, a camera index 0, 1, ..., or a URL rtsp://...)")


def _open_json_lines(target: str | None):
    return sys.stdout if target == "-" else (open(target, "w") if target else None)


def _watch_sources(args: argparse.Namespace) -> list:
    """The sources to watch: files opened now (their frame counts size the progress bar, a bad one fails before
    the models load); cameras and URLs are opened by their readers, one that fails ending alone. With --out
    every source is opened now, whatever it is: its video takes its size and rate."""
    from ..video import is_url, open_source

    for source in args.source:
        _check_source(source)
    live = [s.strip().isdigit() or is_url(s) for s in args.source]
    return [s if is_live and args.out is None else open_source(s) for s, is_live in zip(args.source, live)]


def _file_safe(source: str) -> str:
    """A source as a file name: a file's stem (door.mp4 -> door), camera-0 for a camera, a URL's host, port and
    path (never its user or password); anything but letters, digits, '.', '-' and '_' becomes '_'."""
    from urllib.parse import urlsplit

    if source.strip().isdigit():
        return f"camera-{source.strip()}"
    if "://" in source:
        url = urlsplit(source)
        text = f"{url.hostname or ''}{f'_{url.port}' if url.port else ''}{url.path}"
    else:
        text = Path(source).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "source"


def _video_outputs(out: Path | None, sources: list[str]) -> list[Path]:
    """Each source's annotated video: --out itself for one source; with several, --out is a folder and each
    source's video is <folder>/<source made file-safe>.mp4 (door.mp4, door-2.mp4 when two are alike)."""
    if out is None:
        return []
    if len(sources) == 1:
        return [out]
    twice = next((s for i, s in enumerate(sources) if s in sources[:i]), None)
    if twice is not None:
        raise BadInputError(f"--out {out}: --source {twice} is given twice; each source's video is named after it")
    paths: list[Path] = []
    for source in sources:
        stem, number = _file_safe(source), 1
        while out / f"{stem}{f'-{number}' if number > 1 else ''}.mp4" in paths:
            number += 1
        paths.append(out / f"{stem}{f'-{number}' if number > 1 else ''}.mp4")
    return paths


def _bar_length(sources, max_frames: int | None) -> int:
    """Frames the files hold (each capped at --max-frames); 0 (no bar length) when a camera or URL is watched."""
    counts = [getattr(s, "frame_count", None) for s in sources]
    if not all(counts):
        return 0
    return sum(min(c, max_frames or c) for c in counts)


def _unknowns_keeper(analyzer, gallery, args: argparse.Namespace):
    """The sink that keeps the faces of tracks ending unknown in the gallery (on by default with a gallery);
    None, with a note, when the gallery cannot be written."""
    from ..errors import GalleryError
    from ..streams.unknowns import KeepUnknowns, prepare

    if gallery is None or args.no_keep_unknowns:
        return None
    try:
        prepare(gallery)
    except GalleryError as exc:
        print(f"facestyle watch: note: unknown faces are not kept ({exc}); pass --no-keep-unknowns to say so", file=sys.stderr)
        return None
    return KeepUnknowns(analyzer, gallery, min_quality=max(args.min_quality, DEFAULT_MIN_QUALITY))


def _cmd_watch(args: argparse.Namespace) -> int:
    from ..face.analyzer import GIVEN_ON_COMMAND_LINE
    from ..progress import Progress
    from ..streams import JsonLines, watch
    from ..streams.outlets import check_outlet_urls, open_outlets

    inputs = tuple(args.source) + ((args.gallery,) if args.gallery else ())
    videos = _video_outputs(args.out, args.source)
    if len(videos) > 1:
        check_output(args.out, inputs, args.overwrite, folder=True)
    for output in (*videos, None if args.json_lines in (None, "-") else args.json_lines):
        if output is not None:
            check_output(output, inputs, args.overwrite)  # before the models or the sources are opened
    check_outlet_urls(args.webhook, args.mqtt)  # before the models or the sources are opened
    sources = _watch_sources(args)
    analyzer, gallery = open_gallery(args, create=False, write=False) if args.gallery else (open_analyzer(args), None)
    keeper = _unknowns_keeper(analyzer, gallery, args)
    lines = _open_json_lines(args.json_lines)
    outlets = open_outlets(args.webhook, args.mqtt, chips=args.event_chips)
    try:
        stream_watch = watch(sources, analyzer, gallery, threshold=args.threshold, every=args.every,
                             detect_every=args.detect_every, min_face=args.min_face,
                             motion=not args.no_motion, full_every=args.full_every,
                             reembed_every=args.reembed_every,
                             max_frames=args.max_frames, realtime=args.realtime, max_age=args.max_age,
                             keep_pixels=args.out is not None or args.event_chips or keeper is not None,
                             min_quality=args.min_quality, naming=args.naming,
                             given_source=GIVEN_ON_COMMAND_LINE, stall_timeout=args.stall_timeout)
        _say_threshold(stream_watch, args.quiet)
        sinks = ([JsonLines(lines)] if lines is not None else []) + ([outlets] if outlets else []) + ([keeper] if keeper else [])
        with Progress(_bar_length(sources, args.max_frames), "watching", enabled=not args.quiet) as bar:
            summary = _run_watch(stream_watch, sinks, dict(zip((s.name for s in sources), videos)) if videos else {},
                                 sources, bar)
    finally:
        outlets.close()  # what is still queued is delivered for up to 10 s, the rest counted dropped
        if lines not in (None, sys.stdout):
            lines.close()
    if outlets:
        summary["outlets"] = _outlet_counts(outlets)
    if keeper is not None:
        summary["unknowns_kept"] = {"tracks": keeper.tracks, "faces": keeper.kept}
    for source in summary["sources"]:
        if source.get("error"):
            print(f"facestyle watch: note: {source['error']}", file=sys.stderr)
    if summary.get("note"):
        print(f"facestyle watch: note: {summary['note']}", file=sys.stderr)
    # With --json-lines -, stdout carries only the per-frame lines; the summary goes to stderr.
    print(json.dumps(summary), file=sys.stderr if args.json_lines == "-" else sys.stdout)
    return 0


def _outlet_counts(outlets) -> list[dict]:
    """Each outlet's counts; a note on stderr for each one that dropped or failed events."""
    counts = outlets.counts()
    for c in counts:
        if c["dropped"] or c["failed"]:
            print(f"facestyle watch: note: {c['outlet']}: {c['sent']} event(s) sent, {c['dropped']} dropped, "
                  f"{c['failed']} failed", file=sys.stderr)
    return counts


def _say_threshold(stream_watch, quiet: bool) -> None:
    """The threshold names are decided with, once on stderr: a 1:N threshold grows with the gallery."""
    rule = stream_watch.threshold()
    if rule is not None and not quiet:
        print(f"facestyle watch: threshold {rule.value:.4g} ({rule.source})", file=sys.stderr)


def _run_watch(stream_watch, sinks, videos: dict, sources, bar) -> dict:
    """The watch's items to the sinks (and each source's annotated video, ``videos``: source name -> path); Ctrl-C
    ends it cleanly, keeping what was seen."""
    from ..streams import FrameResult
    from ..streams.annotate import annotate
    from ..video import VideoOutput

    opened = {s.name: s for s in sources} if videos else {}  # with --out, every source was opened
    writers: dict = {}
    started, interrupted = time.perf_counter(), False
    shown: dict[str, int] = {}  # per source, the index of the last frame the bar counted
    faces: dict[str, list] = {}  # per source, the faces of its last analysed frame
    try:
        for name, path in videos.items():  # inside the try: one that cannot be written discards those made before
            writers[name] = VideoOutput(path, opened[name].fps, (opened[name].width, opened[name].height))
        for item in stream_watch:
            for sink in sinks:
                sink(item)
            if not isinstance(item, FrameResult):
                continue
            advance = item.frame - shown.get(item.source, -1)  # frames skipped by --every count on the bar too
            shown[item.source] = item.frame
            fps = stream_watch.frames_taken / max(time.perf_counter() - started, 1e-9)
            if item.analysed:
                faces[item.source] = [face.to_json() for face in item.faces]
            if item.source in writers:
                writers[item.source].write(annotate(item.pixels, faces.get(item.source, []), fps))
            bar.update(advance, postfix=f"{len(item.faces)} face(s) {fps:.1f} fps")
    except KeyboardInterrupt:
        interrupted = True  # the normal way to stop a camera: finish the outputs with what was seen
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    elapsed, frames = time.perf_counter() - started, stream_watch.frames_taken
    summary = {**stream_watch.summary(), "fps": round(frames / elapsed, 3) if frames else 0.0,
               "interrupted": interrupted}
    for writer in writers.values():
        writer.commit()
    if writers:
        first = next(iter(writers.values()))
        summary.update(codec=first.codec, note=first.note)
    return summary


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
    p = subparsers.add_parser("watch", help="find, track and name the faces of cameras and videos")
    p.add_argument("--source", required=True, action="append",
                   help="a video file, a camera index (0, 1, ...) or a URL (rtsp://, http(s)://); repeat to watch "
                        "several at once")
    p.add_argument("--gallery",
                   help="gallery (a SQLite file or a postgresql://... URL) to name the faces from; without it faces are boxed")
    p.add_argument("--out", type=Path,
                   help="write an annotated video (boxes with track id, name, distance and quality; fps) here (.mp4); "
                        "with several sources a folder, one <source>.mp4 in it per source")
    p.add_argument("--json-lines", metavar="FILE|-",
                   help="one JSON object per analysed frame and source, and one per track event, to FILE or stdout (-)")
    p.add_argument("--max-frames", type=positive_int,
                   help="stop each source after N frames (a camera otherwise runs until Ctrl-C)")
    p.add_argument("--every", type=positive_int, default=1,
                   help="analyse one frame in N, the others show the last faces (default 1)")
    p.add_argument("--detect-every", type=positive_int, default=1,
                   help="look at the whole frame on one analysed frame in K, only around the tracked faces in "
                        "between, with --no-motion (default 1)")
    p.add_argument("--no-motion", action="store_true",
                   help="look at the whole frame every --detect-every frames instead of at moving areas no track "
                        "covers on every frame and the whole frame in tiles over every --full-every frames")
    p.add_argument("--full-every", type=positive_int,
                   help="with motion (the default), sweep the whole frame in tiles, a tile a frame at most, every N "
                        "analysed frames, for faces that never moved (default 60: 4 s at 15 fps)")
    p.add_argument("--min-face", type=positive_int, default=50,
                   help="the smallest face width (px) a look at the whole frame finds; smaller costs more (default 50)")
    p.add_argument("--reembed-every", type=positive_int, default=30,
                   help="embed a tracked face again after N analysed frames at most (new tracks and better faces "
                        "are embedded at once; default 30)")
    p.add_argument("--max-age", type=whole_number(0), default=15,
                   help="frames a track survives without a detection, e.g. behind another face (default 15)")
    p.add_argument("--stall-timeout", type=positive_float, default=10.0, metavar="SECONDS",
                   help="a camera or URL that sends no frame for this long is lost and reopened, after 0.5 s, "
                        "then doubling delays up to 30 s (default 10)")
    p.add_argument("--realtime", action="store_true",
                   help="read video files at their frame rate, dropping frames when behind, as a camera does")
    p.add_argument("--threshold", type=positive_float,
                   help="distance threshold > 0 (default: the open-set threshold for the gallery's size with "
                        "--naming track, the model manifest's pair threshold with --naming frame)")
    p.add_argument("--min-quality", type=number_between(0, 1), default=DEFAULT_MIN_QUALITY,
                   help=f"faces of lower quality (0..1) are tracked but never named from (default {DEFAULT_MIN_QUALITY})")
    p.add_argument("--naming", choices=("track", "frame"), default="track",
                   help="track: each track named from its quality-weighted embeddings (default); frame: every face "
                        "of every analysed frame embedded and named from that frame alone (the per-frame baseline)")
    p.add_argument("--webhook", action="append", metavar="URL",
                   help="POST each event as JSON to this http(s) URL, from a queue that never holds up the video "
                        "(retried with backoff; repeat for several)")
    p.add_argument("--mqtt", action="append", metavar="URL",
                   help="publish each event to an MQTT broker, mqtt://[user:password@]host[:port]/prefix: "
                        "<prefix>/<source>/events and the retained <prefix>/<source>/present (repeat for several)")
    p.add_argument("--no-keep-unknowns", action="store_true",
                   help="do not keep the best faces of tracks that end unknown in the gallery (kept by default with "
                        "--gallery, for `facestyle gallery unknowns`)")
    p.add_argument("--event-chips", action="store_true",
                   help="with --webhook or --mqtt: each event of a track carries its best face, a base64 JPEG (\"chip\")")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overwrite_option(p)
    add_model_options(p)
    p.add_argument("--triton", metavar="URL",
                   help="run the detector's and the embedder's networks on this Triton server (HOST:PORT over HTTP, "
                        "grpc://HOST:PORT), serving `facestyle export-triton`'s repository; landmarks, tracking, "
                        "naming and events stay here (the landmarks from --engines)")
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
