"""Where the CNN face detector's time goes, at 320, 640 and 1280 px wide.

    python benchmarks/detect_profile.py [--engines engines] [--widths 320,640,1280] [--repeats 5]

Per width: the median ms of each stage of ``FaceDetector.detect`` (the tiled pyramid in numpy, the
convolutions in onnxruntime, decoding + NMS), the pyramid tensor's size and how much of it is padding
between the levels (work the network does for nothing), the network's FLOPs on that tensor (counted from
the ONNX graph's convolutions), and the GFLOP/s it achieved against this machine's float32 matrix-multiply
rate (numpy sgemm, 1024^3, the roofline a convolution can at best reach). Writes
benchmarks/results/detect-profile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from _machine import cpu_model  # benchmarks/ is on sys.path when a script runs

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO.parent / "shared/data/faces/face_recognition_examples/examples/knn_examples/test/obama_and_biden.jpg"
RESULT = REPO / "benchmarks" / "results" / "detect-profile.json"


def conv_flops(onnx_path: Path, rows: int, cols: int) -> float:
    """Multiply-adds x 2 of every Conv in the (chain-shaped) graph on a rows x cols input."""
    import onnx

    model = onnx.load(str(onnx_path))
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    flops, h, w = 0.0, rows, cols
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        cout, cin, kh, kw = weights[node.input[1]]
        sh, sw = attrs.get("strides", [1, 1])
        top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
        h, w = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
        flops += 2.0 * cout * cin * kh * kw * h * w
    return flops


def sgemm_gflops(n: int = 1024, repeats: int = 5) -> float:
    a, b = np.random.default_rng(0).random((2, n, n), dtype=np.float32)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile(detector, image: np.ndarray, repeats: int) -> dict:
    from facestyle.face import detector as fd

    c = detector.contract
    times: dict[str, list[float]] = {"pyramid_ms": [], "network_ms": [], "decode_nms_ms": []}
    detector.detect(image)  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        tensor, rects = fd.build_pyramid_tensor(image, c)
        t1 = time.perf_counter()
        scores = detector.score_map(tensor)
        t2 = time.perf_counter()
        boxes, _ = fd.decode_scores(scores, rects, c)
        keep = fd.nms(boxes, c.nms_iou, c.nms_covered)
        t3 = time.perf_counter()
        for key, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[key].append(seconds * 1000)
    row = {k: round(statistics.median(v), 2) for k, v in times.items()}
    row["total_ms"] = round(sum(row.values()), 2)
    nr, nc = tensor.shape[2:]
    level_pixels = int(sum((r - l + 1) * (b - t + 1) for l, t, r, b in rects))
    row.update(tensor=[int(nr), int(nc)], levels=len(rects), tensor_mpixels=round(nr * nc / 1e6, 3),
               padding_share=round(1 - level_pixels / (nr * nc), 3), faces=int(len(keep)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=str(REPO / "engines"))
    parser.add_argument("--image", default=str(PHOTO))
    parser.add_argument("--widths", default="320,640,1280")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from PIL import Image

    from facestyle.face.detector import FaceDetector
    from facestyle.images import load_image

    detector = FaceDetector.from_engines(args.engines)
    photo = load_image(args.image)
    gemm = sgemm_gflops()
    out = {"machine": cpu_model(), "load_before": list(os.getloadavg()), "sgemm_gflops": round(gemm, 1),
           "photo": Path(args.image).name, "rows": []}
    print(f"{out['machine']}; numpy sgemm {gemm:.1f} GFLOP/s; load {out['load_before']}")
    print(f"{'width':>6} {'tensor':>11} {'pad %':>6} {'pyramid':>8} {'network':>8} {'decode':>7} {'total':>7} "
          f"{'GFLOP':>6} {'GFLOP/s':>8} {'of sgemm':>8}")
    for width in (int(w) for w in args.widths.split(",")):
        height = round(photo.shape[0] * width / photo.shape[1])
        image = np.asarray(Image.fromarray(photo).resize((width, height), Image.BICUBIC))
        row = {"width": width, "height": height, **profile(detector, image, args.repeats)}
        row["gflop"] = round(conv_flops(Path(args.engines) / "face-detect" / "fp32.onnx", *row["tensor"]) / 1e9, 2)
        row["achieved_gflops"] = round(row["gflop"] / (row["network_ms"] / 1000), 1)
        row["share_of_sgemm"] = round(row["achieved_gflops"] / gemm, 2)
        out["rows"].append(row)
        print(f"{width:6d} {row['tensor'][0]:5d}x{row['tensor'][1]:<5d} {100 * row['padding_share']:6.1f} "
              f"{row['pyramid_ms']:8.1f} {row['network_ms']:8.1f} {row['decode_nms_ms']:7.1f} {row['total_ms']:7.1f} "
              f"{row['gflop']:6.2f} {row['achieved_gflops']:8.1f} {row['share_of_sgemm']:8.2f}", flush=True)
    out["load_after"] = list(os.getloadavg())
    RESULT.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
