"""Face detection latency on one large photo: facestyle's FaceDetector vs dlib's CNN and HOG detectors.

    python benchmarks/detect_latency.py [--image photo.jpg] [--upsample 1] [--repeats 3] [--json out.json]

Boundary measured, the same for every detector: a decoded (H, W, 3) uint8 RGB array in, face boxes
out (dlib's Python API: ``cnn_face_detection_model_v1(path)(img, upsample)`` and
``get_frontal_face_detector()(img, upsample)``). Each is called once to warm up, then ``--repeats``
times; the table gives the median. With ``--upsample 1`` every detector also runs at upsample 1
(about 4x the work). facestyle's time is also split into its stages (pyramid in numpy, convolutions in
onnxruntime, decoding + NMS). Needs `facestyle build` first and dlib-bin.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from _machine import cpu_model, timed  # benchmarks/ is on sys.path when a script runs

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = REPO.parent / "shared/data/faces/face_recognition_examples/examples/knn_examples/test" / "obama_and_biden.jpg"


def stage_times(detector, image: np.ndarray, upsample: int, repeats: int) -> dict[str, float]:
    """Median ms of facestyle's stages: upsampling + tiled pyramid (numpy), convolutions, decoding + NMS."""
    from facestyle.face import detector as fd

    stages: dict[str, list[float]] = {"pyramid_ms": [], "network_ms": [], "decode_nms_ms": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        x = image
        for _ in range(upsample):
            x = fd.pyramid_up(x)
        tensor, rects = fd.build_pyramid_tensor(x, detector.contract)
        t1 = time.perf_counter()
        scores = detector.score_map(tensor)
        t2 = time.perf_counter()
        boxes, _ = fd.decode_scores(scores, rects, detector.contract)
        fd.nms(boxes, detector.contract.nms_iou, detector.contract.nms_covered)
        t3 = time.perf_counter()
        for key, ms in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
            stages[key].append(ms * 1000)
    return {k: round(statistics.median(v), 1) for k, v in stages.items()} | {"tensor_shape": list(tensor.shape)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default=str(REPO / "engines"))
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--upsample", type=int, choices=(0, 1), default=0, help="1: also time upsample 1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    import dlib
    import onnxruntime

    from facestyle.export.dlib.files import DETECTOR_MODEL, locate_dlib_model
    from facestyle.face.detector import FaceDetector
    from facestyle.images import load_image

    image = load_image(args.image)
    detector = FaceDetector.from_engines(args.engines)
    cnn = dlib.cnn_face_detection_model_v1(str(locate_dlib_model(DETECTOR_MODEL)))
    hog = dlib.get_frontal_face_detector()
    detectors = {
        "facestyle-onnxruntime-cpu": lambda up: detector.detect(image, up).boxes.tolist(),
        "dlib-cnn": lambda up: [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in cnn(image, up)],
        "dlib-hog": lambda up: [[r.left(), r.top(), r.right(), r.bottom()] for r in hog(image, up)],
    }
    load_before = os.getloadavg()
    height, width = image.shape[:2]
    print(f"{Path(args.image).name}: {width}x{height}, {args.repeats} repeats after a warm-up", flush=True)
    print(f"{'detector':28s} {'upsample':>8s} {'median ms':>10s} {'min ms':>9s} {'faces':>6s} {'vs dlib-cnn':>12s}")
    rows = []
    for upsample in range(args.upsample + 1):
        found = {}
        for name, fn in detectors.items():
            ms, boxes = timed(lambda: fn(upsample), args.repeats)
            found[name] = boxes
            rows.append(
                {"detector": name, "upsample": upsample, "median_ms": round(statistics.median(ms), 1),
                 "min_ms": round(min(ms), 1), "faces": len(boxes), "samples_ms": [round(m, 1) for m in ms]}
            )
        cnn_ms = next(r["median_ms"] for r in rows if r["detector"] == "dlib-cnn" and r["upsample"] == upsample)
        for row in rows:
            if row["upsample"] == upsample:
                row["speedup_vs_dlib_cnn"] = round(cnn_ms / row["median_ms"], 2)
                print(f"{row['detector']:28s} {upsample:8d} {row['median_ms']:10.1f} {row['min_ms']:9.1f} "
                      f"{row['faces']:6d} {row['speedup_vs_dlib_cnn']:11.2f}x", flush=True)
        same = found["facestyle-onnxruntime-cpu"] == found["dlib-cnn"]
        stages = stage_times(detector, image, upsample, args.repeats)
        ours = next(r for r in rows if r["detector"] == "facestyle-onnxruntime-cpu" and r["upsample"] == upsample)
        ours["same_boxes_as_dlib_cnn"] = same
        ours["stages"] = stages
        print(f"  facestyle boxes identical to dlib-cnn: {same}; stages (median ms): {stages}", flush=True)

    env = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_provider": detector.backend.provider,
        "dlib": dlib.__version__,
        "dlib_use_cuda": bool(dlib.DLIB_USE_CUDA),
    }
    if args.json:
        out = {
            "image": {"file": Path(args.image).name, "width": image.shape[1], "height": image.shape[0]},
            "repeats": args.repeats,
            "environment": env,
            "results": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
