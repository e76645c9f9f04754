"""``facestyle train-embedding``: triplet-loss training of a face embedding, exported for ``--model RUN``.

Only argparse-level code runs at import time; the training code (torch) is imported by the handler.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import BadInputError
from .common import add_engines_option, export_extra_missing
from .io import positive_int

HELD_OUT_FRACTION = 0.1  # of the identities, when no --eval-pairs is given


def _held_out(args, cache, train):
    """(faces, (a, b, same, folds)) for evaluation: LFW-format --eval-pairs, else 10% of the identities held out."""
    import numpy as np

    from facestyle.export.embedding.data import FaceSet, training_pairs
    from facestyle.images import load_image
    from facestyle.face.lfw import read_pairs

    if args.eval_pairs:
        pairs = read_pairs(args.eval_pairs, args.eval_root or args.data)
        files = sorted({p.a for p in pairs} | {p.b for p in pairs})
        index = {f: i for i, f in enumerate(files)}
        chips = np.stack([load_image(f) if cache is None else cache.chip(f)[1] for f in files])
        faces = FaceSet(chips, np.zeros(len(files), int), [], [str(f) for f in files])
        return train, (faces, (np.array([index[p.a] for p in pairs]), np.array([index[p.b] for p in pairs]),
                               np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])))
    rng = np.random.default_rng(args.seed)
    names = np.arange(len(train.names))
    held = set(rng.choice(names, max(2, int(len(names) * HELD_OUT_FRACTION)), replace=False).tolist())
    keep = np.array([label not in held for label in train.labels])
    subset = lambda mask: FaceSet(train.chips[mask], train.labels[mask], train.names,  # noqa: E731
                                  [f for f, m in zip(train.files, mask) if m])
    held_faces = subset(~keep)
    a, b, same = training_pairs(held_faces, 300, args.seed)
    return subset(keep), (held_faces, (a, b, same, np.arange(len(a)) % 10))


def _config(args, train_size: int):
    from facestyle.export.embedding.train import EmbeddingTrainConfig

    batch = args.identities_per_batch * args.images_per_identity
    per_epoch = max(1, -(-train_size // batch))
    steps = args.max_steps if args.max_steps is not None else (args.epochs or 10) * per_epoch
    return EmbeddingTrainConfig(
        arch=args.arch, init=args.init, mining=args.mining, margin=args.margin, normalize=not args.no_normalize,
        identities_per_batch=args.identities_per_batch, images_per_identity=args.images_per_identity,
        lr=args.lr if args.lr is not None else (1e-4 if args.init == "dlib" else 1e-3), max_steps=steps,
        eval_every=args.eval_every or per_epoch, checkpoint_every=args.checkpoint_every, seed=args.seed)


def _cmd_train_embedding(args: argparse.Namespace) -> int:
    try:
        from facestyle.export.embedding.data import ChipCache, identity_names, load_face_set
        from facestyle.export.embedding.train import EmbeddingTrainer
    except ImportError as exc:
        raise export_extra_missing("train-embedding", exc) from None
    from ..face.analyzer import FaceAnalyzer
    from ..face.evaluation import default_cache_path
    from ..progress import Progress

    if (args.out / "checkpoint.pt").exists() and not args.resume:
        raise BadInputError(f"--out {args.out}: holds a run's checkpoint; pass --resume to continue it, or use a new folder")
    cache = None if args.aligned else ChipCache(args.chip_cache or default_cache_path().parent / "chips",
                                                lambda: FaceAnalyzer.from_engines(args.engines))
    only = identity_names(args.identities) if args.identities else None
    train, held_out = _held_out(args, cache, load_face_set(args.data, cache, only, progress=not args.quiet))
    trainer = EmbeddingTrainer(train, held_out, args.out, _config(args, len(train)))
    start = trainer.resume() if args.resume else 0
    with Progress(trainer.config.max_steps - start, "training", enabled=not args.quiet) as bar:
        trainer.run(bar)
    summary = _finish(args, trainer, train, held_out)
    print(json.dumps(summary) if args.json else
          f"{args.out}: {trainer.step} steps, held-out accuracy {summary['eval'].get('accuracy', float('nan')):.4f}, "
          f"threshold {summary['threshold']:.4f}; model {summary['model']} (use --model {args.out})")
    return 0


def _finish(args, trainer, train, held_out) -> dict:
    """Threshold and head on training pairs, their held-out figures, and the export."""
    import numpy as np

    from facestyle.export.embedding.deploy import export_trained

    pairs = trainer.training_pair_embeddings()
    threshold = trainer.calibrated_threshold(pairs)
    summary = {"steps": trainer.step, "seconds": round(trainer.seconds), "eval": trainer.evaluate(threshold),
               "threshold": threshold}
    head = None
    if args.head != "none":
        from facestyle.export.embedding.head import fit_head, head_probabilities

        head = fit_head(*pairs, args.head)
        faces, (ha, hb, hsame, _) = held_out
        held = trainer.embed(faces.chips)
        p = head_probabilities(head, held[ha], held[hb])
        d = np.linalg.norm(held[ha] - held[hb], axis=1)
        summary["head"] = {"form": args.head, "held_out_accuracy": round(float(np.mean((p >= 0.5) == hsame)), 4),
                           "threshold_held_out_accuracy": round(float(np.mean((d <= threshold) == hsame)), 4)}
    data = f"{len(train)} chips of {len(set(train.labels.tolist()))} identities from {args.data}"
    summary["model"] = str(export_trained(trainer, threshold, train.chips, data, head, pairs[:2], summary.get("head")))
    return summary


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
    p.add_argument("--arch", choices=["compact", "dlib"], default="compact")
    p.add_argument("--init", choices=["scratch", "dlib"], default="scratch")
    p.add_argument("--mining", choices=["batch-hard", "semi-hard", "batch-all"], default="batch-hard")
    p.add_argument("--margin", type=float, default=0.2, help="alpha (default 0.2)")
    p.add_argument("--no-normalize", action="store_true", help="raw embeddings (default: L2-normalised)")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=positive_int, help="passes over the training chips (default 10)")
    steps.add_argument("--max-steps", type=int)
    p.add_argument("--identities-per-batch", type=int, default=16, help="P (default 16)")
    p.add_argument("--images-per-identity", type=int, default=4, help="K (default 4)")
    p.add_argument("--lr", type=float, help="Adam's learning rate (default 1e-3 from scratch, 1e-4 from dlib)")
    p.add_argument("--eval-every", type=positive_int, help="steps between evaluations (default: one epoch)")
    p.add_argument("--checkpoint-every", type=positive_int, default=100)
    p.add_argument("--head", choices=["abs", "chi2", "none"], default="abs", help="similarity head fitted at the end")
    p.add_argument("--chip-cache", type=Path, help="aligned chips cached by photo hash (default ~/.cache/facestyle/chips)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_engines_option(p)
    p.set_defaults(func=_cmd_train_embedding)
