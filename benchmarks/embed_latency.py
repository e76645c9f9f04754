"""Per-chip latency of the face embedding: dlib-bin, torch eager and onnxruntime, in one run.

    python benchmarks/embed_latency.py [--engines engines] [--repeats 20] [--json out.json]

Boundary measured, the same for every backend: a batch of aligned uint8 150x150 RGB chips in,
(N, 128) float32 embeddings out (normalisation included). Needs `facestyle build` first, and the
export extra (torch) and dlib-bin for the peers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

from _machine import cpu_model, timed  # benchmarks/ is on sys.path when a script runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="engines")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    import dlib
    import torch

    from facestyle.export.dlib.files import RECOGNITION_MODEL, locate_dlib_model
    from facestyle.export.dlib.recognition import read_recognition_net
    from facestyle.export.models.face_embedder import module_from_dlib
    from facestyle.export.sample_inputs import natural_chips
    from facestyle.face.embedder import FaceEmbedder

    embedder = FaceEmbedder.from_engines(args.engines)
    model_path = locate_dlib_model(RECOGNITION_MODEL)
    module = module_from_dlib(read_recognition_net(model_path))
    oracle = dlib.face_recognition_model_v1(str(model_path))

    def run_torch(chips):
        with torch.no_grad():
            return module(torch.from_numpy(embedder.preprocess(chips))).numpy()

    def run_dlib(chips):
        return [oracle.compute_face_descriptor(c) for c in chips]

    backends = {"dlib-bin": run_dlib, "torch-eager": run_torch, "onnxruntime-cpu": embedder.embed}
    rows = []
    for batch in (1, 32):
        chips = natural_chips(batch)
        for name, fn in backends.items():
            ms, _ = timed(lambda: fn(chips), args.repeats if batch == 1 else max(3, args.repeats // 4))
            per_chip = statistics.median(ms) / batch
            rows.append({"backend": name, "batch": batch, "p50_ms_per_chip": round(per_chip, 3)})
            print(f"{name:16s} batch {batch:3d}: {per_chip:8.2f} ms per chip (median)", flush=True)
    env = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "dlib": dlib.__version__,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
