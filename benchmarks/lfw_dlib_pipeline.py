"""dlib's own face pipeline on an LFW pairs file, scored by the same protocol as `facestyle eval-lfw`.

    python benchmarks/lfw_dlib_pipeline.py --root ../shared/data/lfw-view1 \
        --pairs ../shared/data/lfw-view1/pairsDevTest.txt --json benchmarks/results/lfw-view1-devtest-dlib.json

dlib's CNN detector (upsample 0, then 1), its 5-point shape predictor, get_face_chip(150, 0.25) and
compute_face_descriptor; the same face-not-found policy as facestyle (centred box) and the same
subject choice (the face nearest the image centre). Slow: dlib-bin has no BLAS (~0.5 s per image here).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()

    import dlib

    from facestyle.export.dlib.files import DETECTOR_MODEL, RECOGNITION_MODEL, SHAPE_PREDICTOR_5, locate_dlib_model
    from facestyle.face import lfw
    from facestyle.face.evaluation import FARS, centre_box
    from facestyle.images import load_image
    from facestyle.progress import Progress

    detector = dlib.cnn_face_detection_model_v1(str(locate_dlib_model(DETECTOR_MODEL)))
    predictor = dlib.shape_predictor(str(locate_dlib_model(SHAPE_PREDICTOR_5)))
    recognition = dlib.face_recognition_model_v1(str(locate_dlib_model(RECOGNITION_MODEL)))

    def subject(image: np.ndarray) -> tuple[bool, np.ndarray]:
        centre = np.array([image.shape[1] / 2, image.shape[0] / 2])
        for upsample in (0, 1):
            found = detector(image, upsample)
            if len(found):
                rect = min((d.rect for d in found), key=lambda r: np.linalg.norm(
                    [(r.left() + r.right()) / 2 - centre[0], (r.top() + r.bottom()) / 2 - centre[1]]))
                break
        else:
            rect = dlib.rectangle(*(int(v) for v in centre_box(image.shape)[0]))
        chip = dlib.get_face_chip(image, predictor(image, rect), size=150, padding=0.25)
        return len(found) > 0, np.array(recognition.compute_face_descriptor(chip))

    started = time.perf_counter()
    pairs = lfw.read_pairs(args.pairs, args.root)
    files = sorted({p.a for p in pairs} | {p.b for p in pairs})
    embedded = {}
    with Progress(len(files), "dlib pipeline") as bar:
        for path in files:
            embedded[path] = subject(load_image(path))
            bar.update()
    distances = np.array([np.linalg.norm(embedded[p.a][1] - embedded[p.b][1]) for p in pairs])
    same = np.array([p.same for p in pairs])
    accuracies, thresholds = lfw.kfold_accuracy(distances, same, np.array([p.fold for p in pairs]))
    report = {
        "pipeline": "dlib-bin: cnn_face_detection_model_v1 + shape_predictor (5) + get_face_chip + compute_face_descriptor",
        "accuracy": float(accuracies.mean()),
        "std": float(accuracies.std()),
        "threshold": float(thresholds.mean()),
        "accuracy_at_0.6": float(np.mean((distances <= 0.6) == same)),
        "tar_at_far": {str(far): lfw.tar_at_far(distances, same, far)[0] for far in FARS},
        "pairs": len(pairs),
        "images": len(files),
        "no_face": sum(not embedded[f][0] for f in files),
        "pairs_file": args.pairs,
        "seconds": round(time.perf_counter() - started, 1),
        "dlib": dlib.__version__,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
