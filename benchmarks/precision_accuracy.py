"""What fp16 and int8 cost in accuracy and gain in speed, against fp32, in onnxruntime on this CPU.

    python benchmarks/precision_accuracy.py [--engines engines] [--out benchmarks/results]
        [--models face-embed,face-detect] [--method minmax] [--count 256] [--sensitivity]

Builds (or reuses) ``engines/<model>/{fp16,int8,int8-trt}.onnx`` with ``build_variants`` and writes
``precision-<model>-<machine>.json``. Face embedding: LFW View 1 DevTest 10-fold accuracy and
TAR@FAR, cosine drift to fp32 on the same chips, a threshold re-derived on DevTrain at fp32's
operating point, size, ms per chip at batch 1 and 32 (the ``FaceEmbedder.embed`` boundary: uint8
chips in, embeddings out). Detector: recall, IoU and score drift against fp32 on the shared photos.
``int8-trt`` accuracy is its Q/DQ graph simulated in float (TensorRT's arithmetic); its speed is
onnxruntime's CPU kernels. Needs ``facestyle build`` first and ../shared/data for the LFW figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from _machine import cpu_model  # benchmarks/ is on sys.path when a script runs

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # LFW View 1 beside the repository


def fp32_row(engines: Path) -> dict:
    """fp32's own figures, through the same measurement as the variants (drift 1.0 by construction)."""
    from facestyle.export.precision.measure import measure_embedder
    from facestyle.manifest import read_manifest

    fp32 = engines / "face-embed" / "fp32.onnx"
    manifest = read_manifest(engines / "face-embed" / "fp32.manifest.json")
    figures, _ = measure_embedder(engines, fp32, fp32, manifest, SHARED)
    return {"model": "face-embed", "precision": "fp32", "status": "source", "measured": figures,
            "threshold": manifest["threshold"], "threshold_source": manifest["threshold_source"]}


def sensitivity(engines: Path, count: int) -> list[dict]:
    """Per-layer sensitivity of face-embed: drift with the first / last layers kept in float, both flavours,
    on DevTrain chips held out of calibration."""
    import numpy as np

    from facestyle.export.datasets import lfw_chips, lfw_dir, pipeline_analyzer, spread
    from facestyle.export.precision import FaceChipReader, layer_sensitivity

    root = lfw_dir(SHARED)
    train = lfw_chips(pipeline_analyzer(engines), root, root / "pairsDevTrain.txt")
    picked = spread(list(np.flatnonzero(train.found)), count + 64)
    calibration, held_out = train.chips[picked[0::2][:count]], train.chips[picked[1::2][:64]]
    src = engines / "face-embed" / "fp32.onnx"
    reader = FaceChipReader(calibration, src, "DevTrain chips (even)")
    feeds = FaceChipReader(held_out, src, "DevTrain chips (odd)").batches()
    return [{"flavour": flavour, "rows": layer_sensitivity(src, reader, feeds, flavour)} for flavour in ("int8", "int8-trt")]


def latency(engines: Path, precisions: list[str], rounds: int = 3) -> dict:
    """ms per chip at batch 1 and 32 for every precision, interleaved round by round and the fastest
    kept, so that load from other work on a shared machine hits every variant alike."""
    from facestyle.export.datasets import lfw_chips, lfw_dir, pipeline_analyzer
    from facestyle.export.precision.measure import ms_per_chip

    root = lfw_dir(SHARED)
    chips = lfw_chips(pipeline_analyzer(engines), root, root / "pairsDevTest.txt").chips[:32]
    best: dict = {p: {"b1": float("inf"), "b32": float("inf")} for p in precisions}
    for _ in range(rounds):
        for p in precisions:
            for b in (1, 32):
                best[p][f"b{b}"] = min(best[p][f"b{b}"], ms_per_chip(engines / "face-embed" / f"{p}.onnx", chips, b))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", type=Path, default=Path("engines"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--models", default="face-embed,face-detect")
    parser.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"))
    parser.add_argument("--count", type=int, default=256, help="calibration chips")
    parser.add_argument("--sensitivity", action="store_true", help="also measure per-layer sensitivity")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()

    from facestyle.export.precision import build_variants

    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    for model in args.models.split(","):
        started = time.perf_counter()
        rows = build_variants(args.engines, model, ["fp16", "int8", "int8-trt"], method=args.method,
                              calibration_count=args.count, force=args.force)
        for row in rows:
            manifest = json.loads(Path(row["artifact"]).with_name(f"{row['precision']}.manifest.json").read_text())
            row.update({k: manifest[k] for k in ("threshold", "threshold_source", "calibration", "conversion") if k in manifest})
        if model == "face-embed":
            rows.insert(0, fp32_row(args.engines))
        result = {"model": model, "machine": machine, "method": args.method, "rows": rows,
                  "seconds": round(time.perf_counter() - started, 1)}
        if model == "face-embed":
            result["latency_ms_per_chip"] = latency(args.engines, ["fp32", "fp16", "int8", "int8-trt"])
        if args.sensitivity and model == "face-embed":
            result["sensitivity"] = sensitivity(args.engines, 128)
        cores = f"{os.cpu_count()}core-cpu"
        out = args.out / f"precision-{model}-{cores}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"{model}: wrote {out}")


if __name__ == "__main__":
    main()
