"""``facestyle eval-lfw`` and ``facestyle calibrate``: the LFW protocol, and a threshold chosen on it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_model_options, open_analyzer
from .io import number_between


def _lfw_inputs(args: argparse.Namespace):
    from ..face.evaluation import EmbeddingCache, default_cache_path

    analyzer = open_analyzer(args)  # first: a missing model fails before the cache folder is made
    return analyzer, EmbeddingCache(None if args.no_cache else (args.cache or default_cache_path()))


def _cmd_eval_lfw(args: argparse.Namespace) -> int:
    from ..face.evaluation import evaluate_lfw

    analyzer, cache = _lfw_inputs(args)
    report = evaluate_lfw(analyzer, args.root, args.pairs, cache, progress=not args.quiet)
    far, tar = report.pop("_roc")
    report["precision"] = args.precision
    if args.plot:
        from ..plots import save_roc_png

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

    from ..face import lfw
    from ..face.evaluation import pair_distances
    from ..manifest import update_manifest

    analyzer, cache = _lfw_inputs(args)
    pairs = lfw.read_pairs(args.pairs, args.root)
    distances, no_face, _ = pair_distances(analyzer, pairs, cache, progress=not args.quiet)
    same = np.array([p.same for p in pairs])
    tar, threshold = lfw.tar_at_far(distances, same, args.far)
    manifest_file = analyzer.embedder.manifest_file  # the model measured: the built one, or --model RUN's
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


def _add_lfw_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, required=True, help="LFW folder (holding lfw-deepfunneled/ or the name folders)")
    p.add_argument("--pairs", type=Path, required=True, help="pairsDevTest.txt (View 1) or pairs.txt (View 2)")
    p.add_argument("--cache", type=Path, help="embedding cache (default: $FACESTYLE_CACHE or ~/.cache/facestyle)")
    p.add_argument("--no-cache", action="store_true", help="embed every image again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(p)


def register(subparsers) -> None:
    p = subparsers.add_parser("eval-lfw", help="LFW verification protocol: 10-fold accuracy, TAR@FAR, ROC")
    _add_lfw_options(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", type=Path, help="write the ROC curve to this PNG")
    p.set_defaults(func=_cmd_eval_lfw)

    p = subparsers.add_parser("calibrate", help="choose the threshold for a false accept rate and store it in the manifest")
    _add_lfw_options(p)
    p.add_argument("--far", type=number_between(0, 1, low_included=False, high_included=False), default=0.001,
                   help="target false accept rate (default 0.001)")
    p.set_defaults(func=_cmd_calibrate)
