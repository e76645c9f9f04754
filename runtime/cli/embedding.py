"""``facestyle train-embedding``: triplet-loss training of a face embedding, exported for ``--model RUN``.

The training options are the fields of ``EmbeddingTrainConfig`` (``facestyle.train_config``), checked before torch
loads; the run itself is ``facestyle.export.embedding.run``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import BadInputError
from ..options import add_options, from_args
from ..train_config import EmbeddingTrainConfig
from .common import add_engines_option, export_extra_missing


def _check_paths(args: argparse.Namespace) -> None:
    if not args.data.is_dir():
        raise BadInputError(f"--data {args.data}: not a folder (expected DIR/<identity>/<photos>)")
    for flag, path in (("--identities", args.identities), ("--eval-pairs", args.eval_pairs)):
        if path is not None and not path.is_file():
            raise BadInputError(f"{flag} {path}: no such file")
    if (args.out / "checkpoint.pt").exists() and not args.resume:
        raise BadInputError(f"--out {args.out}: holds a run's checkpoint; pass --resume to continue it, or use a new folder")


def _cmd_train_embedding(args: argparse.Namespace) -> int:
    config = from_args(EmbeddingTrainConfig, args)  # bad options fail here, before torch loads
    _check_paths(args)
    try:
        from facestyle.export.embedding.run import TrainingData, train_embedding
    except ImportError as exc:
        raise export_extra_missing("train-embedding", exc) from None
    data = TrainingData(args.data, args.aligned, args.identities, args.eval_pairs, args.eval_root, args.chip_cache)
    summary = train_embedding(config, data, args.out, args.engines, args.resume, progress=not args.quiet)
    print(json.dumps(summary) if args.json else _summary_line(args.out, summary))
    return 0


def _summary_line(out: Path, summary: dict) -> str:
    held = summary["held_out"]
    start, end, pairs = held["start"] or {}, held["end"], held["pairs"]
    return (f"{out}: {summary['steps']} steps; held-out {pairs['same']} same + {pairs['different']} different pairs: "
            f"accuracy {start.get('accuracy', float('nan')):.4f} -> {end['accuracy']:.4f}, spread "
            f"{start.get('spread', float('nan')):.4g} -> {end['spread']:.4g}; threshold {summary['threshold']:.4f} "
            f"(calibrated on {summary['calibration_pairs']['same']} same + {summary['calibration_pairs']['different']} "
            f"different training pairs); model {summary['model']} (use --model {out})")


def register(subparsers) -> None:
    p = subparsers.add_parser("train-embedding", help="train a face embedding with triplet loss and online mining "
                                                      "(extra 'export'); use it with --model RUN")
    p.add_argument("--data", type=Path, required=True, help="DIR/<identity>/<photos> (or aligned chips with --aligned)")
    p.add_argument("--out", type=Path, required=True, help="run folder: checkpoint.pt, loss.jsonl, eval.jsonl, engines/")
    p.add_argument("--aligned", action="store_true", help="the photos are aligned 150x150 chips already")
    p.add_argument("--identities", type=Path, help="train only on the identities this pairs file (or name list) mentions")
    p.add_argument("--eval-pairs", type=Path, help="held-out pairs (LFW format) to evaluate on each epoch "
                                                   "(default: 10%% of the identities held out)")
    p.add_argument("--eval-root", type=Path, help="where --eval-pairs' images are (default: --data)")
    p.add_argument("--chip-cache", type=Path, help="aligned chips cached by photo hash (default: the cache folder's chips)")
    add_options(p, EmbeddingTrainConfig)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_engines_option(p)
    p.set_defaults(func=_cmd_train_embedding)
