"""What finding small faces in a stream costs: full passes at several scales, region passes, and recall.

    python benchmarks/detect_regions.py [--engines DIR] [--repeats 7]

A 960x540 scene: a BSDS500 photo with real LFW faces (deep-funneled, each photo scaled so the detector's box on
its face is the chosen width) pasted on it, 18 a scene. Full passes (1x, 72/min_face for min_face 50 and 45,
FaceDetector's upsample 1): median ms, and recall of 40-80 px faces. Region passes around 1, 3 and 6 tracked faces:
median ms, and the box against the full pass's. A 15-frame clip of three moving faces through FrameDetector and
the tracker at detect_every 1, 3 and 5: ms a frame. Motion gating: people walking into benchmarks/streams.py's
scenes, full passes every 3rd frame against motion passes with the whole frame swept in tiles every 60th: CPU ms
a frame, the slowest frame, and the share of people found within 1, 3 and 8 frames of entering. The machine may be
shared: medians of several runs, min and max beside them. Writes benchmarks/results/detect-regions-2core-cpu.json.
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
DATA = REPO.parent / "shared" / "data"
LFW = DATA / "lfw-view1" / "lfw-deepfunneled"
BSDS = DATA / "content" / "bsds500"
RESULT = REPO / "benchmarks" / "results" / "detect-regions-2core-cpu.json"
WIDTH, HEIGHT = 960, 540


def lfw_faces(detector, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(photo, its face box) for the first ``count`` LFW people with one face found at 1x."""
    from facestyle.images import load_image

    faces = []
    for person in sorted(p for p in os.listdir(LFW) if (LFW / p / f"{p}_0001.jpg").exists()):
        photo = load_image(LFW / person / f"{person}_0001.jpg")
        found = detector.detect(photo)
        if len(found) == 1:
            faces.append(_around_face(photo, found.boxes[0]))
        if len(faces) == count:
            return faces
    raise SystemExit(f"only {len(faces)} LFW photos with one face in {LFW}")


def _around_face(photo: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo cut to its face box and a quarter of its side around it, and the box in the cut."""
    grow = (box[2] - box[0] + 1) // 4
    left, top = max(0, box[0] - grow), max(0, box[1] - grow)
    right, bottom = min(photo.shape[1], box[2] + grow + 1), min(photo.shape[0], box[3] + grow + 1)
    return photo[top:bottom, left:right], box - np.array([left, top, left, top])


def background() -> np.ndarray:
    from PIL import Image

    path = sorted(BSDS.rglob("*.jpg"))[0]
    return np.asarray(Image.open(path).convert("RGB").resize((WIDTH, HEIGHT), Image.BILINEAR))


def paste_face(frame: np.ndarray, photo: np.ndarray, box: np.ndarray, width: int, left: int, top: int) -> list[int]:
    """The photo scaled so its face box is ``width`` px wide, pasted with its top-left at (left, top) (cut at the
    frame's edges); returns the face's box in the frame."""
    from PIL import Image

    k = width / (box[2] - box[0] + 1)
    size = (round(photo.shape[1] * k), round(photo.shape[0] * k))
    patch = np.asarray(Image.fromarray(photo).resize(size, Image.BILINEAR))
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + size[0], frame.shape[1]), min(top + size[1], frame.shape[0])
    frame[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    origin = np.array([left, top, left, top])
    edges = np.asarray(box, np.float64) + np.array([0, 0, 1, 1])
    return [int(v) for v in np.round(origin + edges * k) - np.array([0, 0, 1, 1])]


def grid_scene(faces, width: int) -> tuple[np.ndarray, list[list[int]]]:
    """Every face at ``width`` px on a grid over the background: the frame and the faces' boxes."""
    frame, truth = background().copy(), []
    cols = 6
    step_x, step_y = WIDTH // cols, HEIGHT // ((len(faces) + cols - 1) // cols)
    for i, (photo, box) in enumerate(faces):
        patch_side = round(photo.shape[1] * width / (box[2] - box[0] + 1))
        left = (i % cols) * step_x + (step_x - patch_side) // 2
        top = (i // cols) * step_y + (step_y - patch_side) // 2
        truth.append(paste_face(frame, photo, box, width, left, top))
    return frame, truth


def iou(a, b) -> float:
    from facestyle.streams.tracker import iou_matrix

    return float(iou_matrix(np.asarray([a]), np.asarray([b]))[0, 0])


def recall(found, truth, min_iou: float = 0.4) -> float:
    hits = sum(any(iou(box, t) >= min_iou for box in found.boxes) for t in truth)
    return hits / len(truth)


def median_ms(fn, repeats: int) -> dict:
    """Wall ms (median, min, max) and this process's CPU ms (median, both cores: what a frame takes from the
    machine, less swayed than wall time by other jobs) of ``repeats`` calls after a warm-up."""
    fn()  # warm-up: buffers, onnxruntime's first run
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return {"median_ms": round(statistics.median(wall), 1), "min_ms": round(min(wall), 1),
            "max_ms": round(max(wall), 1), "cpu_ms": round(statistics.median(cpu), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=None, help="face engines folder (default: facestyle's)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--faces", type=int, default=36, help="LFW faces per size (scenes of 18 on a 6 x 3 grid)")
    parser.add_argument("--motion-runs", type=int, default=3, help="runs of each motion-gating scene")
    parser.add_argument("--motion-seconds", type=float, default=9.0, help="length of the motion-gating scenes")
    parser.add_argument("--only-motion", action="store_true", help="measure motion gating only, keep the rest")
    args = parser.parse_args()

    from facestyle.face.detector import FaceDetector

    detector = FaceDetector.from_engines(args.engines)
    if args.only_motion:
        result = json.loads(RESULT.read_text())
        result["motion_gating"] = motion_gating(detector, args.motion_runs, args.motion_seconds)
        return _write(result)
    faces = lfw_faces(detector, args.faces)
    groups = [faces[i : i + 18] for i in range(0, len(faces), 18)]  # 18 faces a scene: a 6 x 3 grid
    scenes = {width: [grid_scene(group, width) for group in groups] for width in (40, 45, 50, 60, 80)}
    result = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_before": os.getloadavg()},
              "frame": [WIDTH, HEIGHT], "repeats": args.repeats, "faces_per_size": len(faces), "low_score": LOW,
              "noise": "a machine shared with other jobs: medians of repeated runs, min and max beside them"}
    result["full_passes"] = full_passes(detector, scenes, args.repeats)
    result["region_passes"] = region_passes(detector, scenes, args.repeats)
    result["stream_loop"] = stream_loops(detector, groups[0], args.repeats)
    result["motion_gating"] = motion_gating(detector, args.motion_runs, args.motion_seconds)
    result["machine"]["load_after"] = os.getloadavg()
    _write(result)


def _write(result: dict) -> None:
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    temp = RESULT.with_suffix(".json.tmp")
    temp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(temp, RESULT)
    print(f"wrote {RESULT}")


LOW = -0.6  # the tracker's low score: the threshold a stream's detector runs at
FULL_PASSES = {  # name: (min_face, upsample)
    "1x (min_face 72)": (72, 0),
    "1.44x (min_face 50)": (50, 0),
    "1.6x (min_face 45)": (45, 0),
    "2x, FaceDetector's upsample 1": (72, 1),
}


def full_passes(detector, scenes, repeats: int) -> dict:
    """ms of a full pass of the 960x540 scene, and recall of faces of each width, per scale."""
    from facestyle.streams.regions import FrameDetector

    out = {}
    for name, (min_face, upsample) in FULL_PASSES.items():
        frames = FrameDetector(detector, min_face=min_face, upsample=upsample, low_score=LOW)
        row = {"scale": round(frames.scale, 3), **median_ms(lambda: frames.full_pass(scenes[50][0][0]), repeats)}
        for width, pairs in scenes.items():
            found = [(frames.full_pass(frame), truth) for frame, truth in pairs]
            row[f"recall_{width}px"] = _mean_recall(found)
            row[f"recall_{width}px_score_over_0"] = _mean_recall([(_confident(f), t) for f, t in found])
        out[name] = row
        print(name, row, flush=True)
    return out


def region_passes(detector, scenes, repeats: int) -> dict:
    """ms of a region pass around 1, 3 and 6 tracked faces (the full pass's boxes), the share of those faces it
    finds again, and the mean IoU of its box with the full pass's."""
    from facestyle.streams.regions import FrameDetector

    frames = FrameDetector(detector, detect_every=3, min_face=50, low_score=LOW)
    out = {}
    for width in (50, 80):
        frame, truth = scenes[width][0]
        full = frames.full_pass(frame)
        tracked = [full.boxes[int(np.argmax([iou(b, t) for b in full.boxes]))] for t in truth]
        for count in (1, 3, 6):
            row = median_ms(lambda: frames.detect(frame, tracked[:count], 1), repeats)
            found = frames.detect(frame, tracked[:count], 1)
            ious = [max((iou(b, t) for b in found.boxes), default=0.0) for t in tracked[:count]]
            row["found_again"] = round(sum(v >= 0.6 for v in ious) / count, 3)
            row["mean_iou_with_full_pass"] = round(statistics.mean(ious), 3)
            out[f"{count} faces of {width} px"] = row
            print("regions", count, width, row, flush=True)
    return out


def moving_scene(faces, count: int) -> list[tuple[np.ndarray, list]]:
    """``count`` frames of three faces (50, 70 and 110 px) walking 3 px a frame."""
    out = []
    for i in range(count):
        frame = background().copy()
        truth = [paste_face(frame, *faces[k], width, left + 3 * i, top + i)
                 for k, (width, left, top) in enumerate(((50, 100, 100), (70, 400, 250), (110, 650, 80)))]
        out.append((frame, truth))
    return out


def stream_loops(detector, faces, repeats: int) -> dict:
    """A 15-frame clip of three moving faces through FrameDetector and the tracker: ms a frame (detection and
    tracking) and the share of face-frames whose track was matched to a measurement, per detect_every."""
    from facestyle.streams.regions import FrameDetector
    from facestyle.streams.tracker import Tracker

    clip = moving_scene(faces, 15)
    out = {}
    for every in (1, 3, 5):
        frames = FrameDetector(detector, detect_every=every, min_face=50, low_score=LOW)
        measured = []

        def loop():
            tracker, matched = Tracker(low_score=LOW), 0
            for index, (frame, _) in enumerate(clip):
                found = frames.detect(frame, [t.kalman.box for t in tracker.tracks], index)
                update = tracker.predict() if found is None else tracker.update(found.boxes, found.scores)
                matched += len(update.matched)
            measured.append(matched / (3 * len(clip)))

        row = median_ms(loop, repeats)
        row = {key: round(value / len(clip), 1) for key, value in row.items()}
        row["measured_share"] = round(statistics.median(measured), 3)
        out[f"detect_every {every}"] = row
        print("loop", every, row, flush=True)
    every_frame = out["detect_every 1"]
    for row in out.values():  # the goal: detect_every 3 costs at most a third of detecting every frame
        row["cpu_share_of_detect_every_1"] = round(row["cpu_ms"] / every_frame["cpu_ms"], 3)
        row["wall_share_of_detect_every_1"] = round(row["median_ms"] / every_frame["median_ms"], 3)
    return out


MOTION_CONFIGS = {  # name: FrameDetector options
    "full pass every 3rd frame": {"detect_every": 3},
    "motion, the whole frame swept in tiles every 60th frame (the default)": {"motion": True},
}
FOUND_WITHIN = (1, 3, 8)  # frames from a face's entering


def motion_gating(detector, runs: int, seconds: float) -> dict:
    """LFW people walking into a 960x540 scene (benchmarks/streams.py's make_scene, entering at ~50 px) through
    FrameDetector and the tracker, per configuration: CPU ms a frame (median of the runs), the slowest frame's
    wall ms, and the share of people found (a detection at IoU >= 0.5 with their box) within N frames of
    entering (their face first at least half visible)."""
    import tempfile

    from streams import make_scene

    folder = Path(tempfile.mkdtemp(prefix="facestyle-motion-"))
    scenes = [_scene_frames(*make_scene(seed, seconds=seconds, folder=folder)) for seed in (1, 2)]
    widths = [face["box"][2] - face["box"][0] + 1 for _, truth in scenes for face in _entering(truth)]
    out = {"scenes": len(scenes), "seconds": seconds, "runs": runs,
           "face_width_on_entering_px": {"median": statistics.median(widths), "min": min(widths), "max": max(widths)}}
    for name, options in MOTION_CONFIGS.items():
        cpu, slowest, found_after = [], [], []
        for run in range(runs):
            for frames, truth in scenes:
                ms, wall, after = _watch_scene(detector, options, frames, truth)
                cpu.append(ms)
                slowest.append(wall)
                found_after += after if run == 0 else []  # the same frames give the same detections
        row = {"cpu_ms_per_frame": round(statistics.median(cpu), 1),
               "slowest_frame_after_the_first_wall_ms": round(max(slowest), 1),
               "people": len(found_after)}
        for n in FOUND_WITHIN:
            row[f"found_within_{n}_frames"] = round(sum(a is not None and a < n for a in found_after) / len(found_after), 3)
        row["found_at_all"] = round(sum(a is not None for a in found_after) / len(found_after), 3)
        out[name] = row
        print("motion", name, row, flush=True)
    return out


def _entering(truth: dict) -> list[dict]:
    """Each person's face on the first frame it is at least half visible."""
    first = {}
    for faces in truth["faces"]:
        for face in faces:
            if face["visible"] >= 0.5:
                first.setdefault(face["id"], face)
    return list(first.values())


def _scene_frames(path: Path, truth: dict) -> tuple[list[np.ndarray], dict]:
    import cv2

    video, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return frames, truth


def _watch_scene(detector, options: dict, frames: list, truth: dict) -> tuple[float, float, list]:
    """(CPU ms a frame, the slowest frame's wall ms after the first (a whole look by design), frames from entering
    to found per person, None: never)."""
    from facestyle.streams.regions import FrameDetector
    from facestyle.streams.tracker import Tracker

    looks, tracker = FrameDetector(detector, min_face=50, low_score=LOW, **options), Tracker(low_score=LOW)
    entered, found_at, slowest = {}, {}, 0.0
    start_cpu = time.process_time()
    for index, frame in enumerate(frames):
        start = time.perf_counter()
        found = looks.detect(frame, [t.kalman.box for t in tracker.tracks], index)
        if found is None:
            tracker.predict()
        else:
            tracker.update(found.boxes, found.scores)
        slowest = max(slowest, (time.perf_counter() - start) * 1000) if index else slowest
        for face in truth["faces"][index]:
            if face["visible"] < 0.5:
                continue
            entered.setdefault(face["id"], index)
            if face["id"] not in found_at and found is not None and any(iou(b, face["box"]) >= 0.5 for b in found.boxes):
                found_at[face["id"]] = index
    cpu_ms = (time.process_time() - start_cpu) * 1000 / len(frames)
    return cpu_ms, slowest, [found_at[p] - entered[p] if p in found_at else None for p in entered]


def _mean_recall(found_and_truth) -> float:
    return round(statistics.mean(recall(found, truth) for found, truth in found_and_truth), 3)


def _confident(found):
    from facestyle.face.detector import Detections

    keep = found.scores >= 0
    return Detections(found.boxes[keep], found.scores[keep])


if __name__ == "__main__":
    main()
