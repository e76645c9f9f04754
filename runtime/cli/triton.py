"""``facestyle export-triton``: a Triton Inference Server model repository from the built models."""

from __future__ import annotations

import argparse
from pathlib import Path

from .io import positive_int

PLATFORMS = ("onnxruntime", "tensorrt", "python")  # as facestyle.export.triton_repo.PLATFORMS (not imported: torch-free parser)


def _cmd_export_triton(args: argparse.Namespace) -> int:
    from ..export.triton_repo import export_repository  # the export side, imported when the command runs

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    kind = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}.get(args.device)
    done = export_repository(args.out, args.engines, models, args.precision, args.platform, kind, args.instances,
                             pipeline=not args.no_pipeline)
    width = max(len(d.model) for d in done)
    print(f"{'model':<{width}}  platform     precision  files")
    for d in done:
        files = ", ".join(d.files) if d.files else "-"
        print(f"{d.model:<{width}}  {d.platform:<11}  {d.precision:<9}  {files}" + (f"  ({d.note})" if d.note else ""))
    print(f"wrote {args.out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export-triton", help="write a Triton Inference Server model repository (config.pbtxt per model, pipeline model)")
    p.add_argument("--out", type=Path, required=True,
                   help="repository folder: new, empty, or one export-triton wrote (replaced atomically)")
    p.add_argument("--engines", type=Path, default=None, help="artifact folder (default: $FACESTYLE_ENGINES or ./engines)")
    p.add_argument("--models", help="comma-separated subset, e.g. face-embed,face-detect,landmarks-5 (default: every built model)")
    p.add_argument("--precision", default="fp32", help="embedding variant (fp32, fp16, int8, int8-trt); models without it use fp32")
    p.add_argument("--platform", choices=PLATFORMS, default="onnxruntime",
                   help="onnxruntime: onnxruntime_onnx; tensorrt: tensorrt_plan from `build --engine trt`; "
                        "python: Python-backend models running onnxruntime (default: onnxruntime)")
    p.add_argument("--device", choices=["auto", "gpu", "cpu"], default="auto",
                   help="instance_group kind (auto: GPU for onnxruntime/tensorrt, CPU for python)")
    p.add_argument("--instances", type=positive_int, default=1, help="instances per model (instance_group count, default 1)")
    p.add_argument("--no-pipeline", action="store_true", help="leave out the face-pipeline BLS model")
    p.set_defaults(func=_cmd_export_triton)
