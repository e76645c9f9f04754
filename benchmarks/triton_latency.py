"""In-process vs through Triton: embed (batch 1/8/32) and one photo end to end, p50/p90/p99, in one run.

A real tritonserver (Triton 2.51.0 from PyPI's nvidia-pytriton, Python backend; the venv is made once
and cached) serves the repository `facestyle export-triton --platform python` writes, on 127.0.0.1;
the same chips and photo go through the in-process runtime, Triton over HTTP and Triton over gRPC.

    python benchmarks/triton_latency.py --engines engines [--out benchmarks/results]

Writes triton-latency-<machine>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402 (after the sys.path line that finds it)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=Path, default=Path("engines"))
    parser.add_argument("--photo", type=Path, help="a photo with a face (default: scikit-image's astronaut)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.export.triton_repo import export_repository
    from facestyle.triton.bench import markdown, run_triton_bench
    from facestyle.triton.local import LocalTriton, ensure_venv

    photo = args.photo or skimage_data_dir() / "astronaut.png"
    started = time.perf_counter()
    venv = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    venv_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        export_repository(Path(tmp) / "repo", args.engines, platform="python")
        started = time.perf_counter()
        with LocalTriton(venv, Path(tmp) / "repo", log_file=Path(tmp) / "server.log") as server:
            ready_s = time.perf_counter() - started
            rows = run_triton_bench({"http": server.http_url, "grpc": server.grpc_url}, args.engines, photo,
                                    repeats=args.repeats, progress=lambda line: print(line, file=sys.stderr))
    machine = cpu_model()
    result = {"machine": machine, "load_average_after": [round(v, 2) for v in os.getloadavg()],
              "server": "tritonserver 2.51.0 (nvidia-pytriton 0.7.0), Python backend, onnxruntime CPU",
              "photo": str(photo), "venv_seconds": round(venv_s, 1), "server_ready_seconds": round(ready_s, 1),
              "rows": rows}
    slug = re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"triton-latency-{slug}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"triton-latency-{slug}.md").write_text(
        f"Machine: {machine}, no GPU; load average after the run {result['load_average_after']}; "
        f"{result['server']}; repeats interleaved in rounds\n\n" + markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
