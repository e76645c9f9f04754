"""``facestyle build``: convert the source weights, export validated ONNX, add precision variants and engines."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..capabilities import PRECISION_NAMES
from .common import export_extra_missing


def _split(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        from facestyle.export.build import build, build_precision_variants, build_tensorrt_engines, format_table
    except ImportError as exc:
        raise export_extra_missing("`facestyle build`", exc) from None
    precisions = _split(args.precision)
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
    results = build(args.out, force=args.force, recognition_model=args.recognition_model,
                    detector_model=args.detector_model, shape_predictor=args.shape_predictor, models=models,
                    style_weights=tuple(args.style_weights))
    results += build_precision_variants(args.out, results, precisions, force=args.force)
    if args.engine == "trt":
        results += build_tensorrt_engines(args.out, [r for r in results if r.precision in precisions], force=args.force)
    print(format_table(results))
    if all(r.status == "up to date" for r in results):
        print("Nothing changed: every artifact is up to date (use --force to rebuild).")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("build", help="convert the source weights and export validated ONNX artifacts")
    p.add_argument("--out", type=Path, default=Path("engines"), help="artifact folder (default: ./engines)")
    p.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    p.add_argument("--recognition-model", type=Path, help="path to dlib_face_recognition_resnet_model_v1.dat "
                   "(default: from the installed face_recognition_models package)")
    p.add_argument("--detector-model", type=Path, help="path to mmod_human_face_detector.dat (default: likewise)")
    p.add_argument("--shape-predictor", type=Path, help="path to shape_predictor_5_face_landmarks.dat (default: likewise)")
    p.add_argument("--models", help="comma-separated subset, e.g. face-embed,style-starry_night (default: all)")
    p.add_argument("--style-weights", action="append", default=[], metavar="RUN_DIR",
                   help="a style you trained: the `facestyle train-style` --out folder (or its .safetensors); "
                   "repeatable; given alone, only these styles are built")
    p.add_argument("--precision", default="fp32", help=f"comma-separated: {','.join(PRECISION_NAMES)} (default: fp32); "
                   "variants are converted from fp32, calibrated on real data and measured")
    p.add_argument("--engine", choices=["none", "trt"], default="none",
                   help="trt: also build TensorRT engines (needs TensorRT and an NVIDIA GPU)")
    p.set_defaults(func=_cmd_build)
