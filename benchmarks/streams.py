"""Tracked, named faces in video, against ground truth: does tracking name people better than naming each frame?

    python benchmarks/streams.py --json benchmarks/results/streams-2core-cpu.json \\
        --plot benchmarks/results/streams-2core-cpu.png

Scenes (:func:`make_scene`): LFW people (deep-funneled photos) walk through a 960x540 BSDS500 background at
15 fps. Each is a face crop pasted with a soft edge that moves along a path, grows from ~50 to ~160 px wide
(walking toward the camera), turns (its photo changes to another photo of the same person mid-walk), and one
passes in front of another (the person behind is hidden for a few frames). Enrolled people are enrolled from
a photo that never appears in the scene; strangers are not enrolled. The gallery holds the scenes' enrolled
people and distractors from LFW, one photo each. Truth per frame: person id, identity, face box, and how much
of the face is visible. Every scene is watched as a video file with the configurations of :data:`CONFIGS`,
then scored: IDF1, MOTA and ID switches (py-motmetrics, face boxes matched at IoU >= 0.5), identity accuracy
per face-frame, wrong-name rate, and the frames from a person's first appearance to their right name.
Throughput: frames/s of one stream as fast as it runs, CPU-seconds per frame, and how many 15 fps streams
(copies of one scene) run in real time at once with under 5% of each source's frames dropped.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
LFW = SHARED / "lfw-view1" / "lfw-deepfunneled"
BSDS = SHARED / "content" / "bsds500"
WIDTH, HEIGHT, FPS = 960, 540, 15.0
STRANGER, UNKNOWN = "stranger", "unknown"
# In a deep-funneled 250x250 LFW photo the face sits in the same place: the box the facestyle (dlib MMOD)
# detector finds there, median over 120 photos, is FACE_BOX; CROP is the square around it that is pasted.
FACE_BOX = (72, 77, 167, 175)  # [left, top, right, bottom], inclusive
CROP = (38, 44, 202, 208)  # [left, top, right, bottom), the face with hair and chin, 164 px square
FEATHER = 0.15  # the soft edge, as a fraction of the pasted crop's side
SCORED_VISIBLE = 0.5  # a truth face less visible than this (hidden, or out of the frame) is not scored
MATCH_IOU = 0.5
# BSDS500 photos in which the detector finds no face at 960x540, even at the tracker's low threshold.
BACKGROUNDS = ("test/100007.jpg", "test/117025.jpg", "test/140006.jpg", "test/188025.jpg", "test/223060.jpg",
               "test/259060.jpg", "test/334025.jpg", "test/8068.jpg", "train/104022.jpg", "train/163062.jpg",
               "train/35091.jpg", "val/148026.jpg")
MAX_DROPPED = 0.05  # a stream runs in real time when under this fraction of its frames is dropped

CONFIGS = [  # name, watch options; the baseline names every frame's face afresh, as a per-frame loop does
    ("per-frame", {"detect_every": 1, "naming": "frame"}),
    ("tracked-d1", {"detect_every": 1}),
    ("tracked-d3", {"detect_every": 3}),
    ("tracked-motion", {"motion": True}),  # what `facestyle watch` does by default: motion-gated, a full pass every 2 s
]
TRACKED = ("tracked-d1", "tracked-d3", "tracked-motion")
GOALS = [  # (config, metric, "min"/"max", target: a number, or the name of a config to compare with)
    *[(c, "wrong_name_rate", "max", 0.05) for c in TRACKED],
    *[(c, "identity_accuracy", "min", "per-frame") for c in TRACKED],
    ("tracked-d1", "idf1", "min", 0.85),
    ("tracked-d3", "idf1", "min", 0.8),
    ("tracked-motion", "idf1", "min", 0.8),
    ("tracked-d3", "cpu_s_per_frame", "max", 1 / 3),  # a fraction of the per-frame loop's: see check_goals
    ("tracked-motion", "cpu_s_per_frame", "max", 1 / 3),
    ("tracked-d3", "realtime_streams", "min", 1),
    ("tracked-motion", "realtime_streams", "min", 1),
]


# -- scenes ---------------------------------------------------------------------------------------------------
@dataclass
class Walk:
    """One person's walk: frames [start, end), centre x and face width from their start to their end values."""

    pid: int
    identity: str  # the enrolled name, or "stranger"
    photos: list  # two photos of the person: the first before the turn, the second after
    start: int
    end: int
    x: tuple[float, float]
    width: tuple[float, float]
    y_offset: float
    turn: int  # the frame the photo changes

    def at(self, frame: int) -> tuple[float, float, float] | None:
        """(centre x, centre y, face width) at ``frame``, None when not in the scene."""
        if not self.start <= frame < self.end:
            return None
        u = (frame - self.start) / max(self.end - self.start - 1, 1)
        width = self.width[0] + u * (self.width[1] - self.width[0])
        bob = 0.04 * width * np.sin(2 * np.pi * 1.8 * frame / FPS)  # the head bobs with each step
        return self.x[0] + u * (self.x[1] - self.x[0]), _ground_y(width) + self.y_offset + bob, width


def _ground_y(width: float) -> float:
    """A nearer (wider) face is lower in the frame."""
    return 170 + 1.4 * width


@functools.cache
def _people(min_photos: int, max_photos: int | None = None) -> list[tuple[str, list[Path]]]:
    folders = sorted(d for d in LFW.iterdir() if d.is_dir())
    found = [(d.name, sorted(d.glob("*.jpg"))) for d in folders]
    return [(n, p) for n, p in found if len(p) >= min_photos and (max_photos is None or len(p) <= max_photos)]


# Disjoint by their number of photos: enrolled people (one photo enrolled, two others walk) have 3 or more,
# strangers exactly 2, distractors 1, so no stranger of one scene is enrolled for another.
def enrolled_pool():
    return _people(3)


def stranger_pool():
    return _people(2, 2)


def distractor_pool():
    return _people(1, 1)


def plan_scene(seed: int, people: int = 3, strangers: int = 1, seconds: float = 12.0) -> dict:
    """The walks of a scene: ``people`` enrolled and ``strangers`` not, the last one passing in front of the first."""
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * FPS))
    enrolled = [enrolled_pool()[i] for i in rng.choice(len(enrolled_pool()), people, replace=False)]
    others = [stranger_pool()[i] for i in rng.choice(len(stranger_pool()), strangers, replace=False)]
    walks, enrol_photos = [], {}
    for pid, (name, photos) in enumerate(enrolled + others, start=1):
        is_enrolled = pid <= people
        if is_enrolled:
            enrol_photos[name] = str(photos[0])  # never in the scene
            shown = [photos[i] for i in sorted(rng.choice(np.arange(1, len(photos)), 2, replace=False))]
        else:
            shown = photos[:2]
        walks.append(_random_walk(rng, pid, name if is_enrolled else STRANGER, [str(p) for p in shown], frames))
    if len(walks) > 1:
        walks[-1] = _crossing_walk(walks[0], walks[-1], frames)
    background = BSDS / BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    return {"seed": seed, "frames": frames, "fps": FPS, "size": [WIDTH, HEIGHT], "background": str(background),
            "walks": walks, "enrolled": enrol_photos}


def _random_walk(rng, pid: int, identity: str, photos: list, frames: int) -> Walk:
    length = int(rng.uniform(0.45, 0.65) * frames)
    start = int(rng.integers(0, frames - length + 1))
    x0, x1 = rng.uniform(150, WIDTH - 150, 2)
    widths = (rng.uniform(48, 60), rng.uniform(130, 162))
    turn = start + int(rng.uniform(0.4, 0.6) * length)
    return Walk(pid, identity, photos, start, start + length, (x0, x1), widths, rng.uniform(-30, 30), turn)


def _crossing_walk(behind: Walk, walk: Walk, frames: int) -> Walk:
    """``walk`` changed to cross in front of ``behind``: at frame ``meet`` both are at the same x, this one a
    quarter wider (nearer), walking sideways at 12 px a frame against the other's way, so it hides the face
    behind for a few frames."""
    meet = behind.start + int(0.4 * (behind.end - behind.start))
    x, _, width = behind.at(meet)
    near = 1.25 * width
    half = min(35, meet, frames - meet)
    speed = -12.0 * (1 if behind.x[1] >= behind.x[0] else -1)  # against the walk behind: a short crossing
    growth = min(near - 45, 162 - near) / half
    return Walk(walk.pid, walk.identity, walk.photos, meet - half, meet + half,
                (x - speed * half, x + speed * (half - 1)), (near - growth * half, near + growth * (half - 1)),
                behind.y_offset, meet)


def _crop(path: str) -> np.ndarray:
    from facestyle.images import load_image

    left, top, right, bottom = CROP
    return load_image(path)[top:bottom, left:right]


def _soft_mask(side: int) -> np.ndarray:
    """1 inside, falling to 0 over the outer FEATHER of the square towards its edges."""
    ramp = np.clip((np.minimum(np.arange(side), np.arange(side)[::-1]) + 0.5) / max(FEATHER * side, 1.0), 0, 1)
    return np.minimum(ramp[:, None], ramp[None, :])[..., None]


class SceneRenderer:
    """Frames of a planned scene, each with its truth: [{"id", "identity", "box", "visible"}]."""

    def __init__(self, plan: dict):
        import cv2

        self.plan, self._cv2 = plan, cv2
        background = cv2.cvtColor(cv2.imread(plan["background"]), cv2.COLOR_BGR2RGB)
        self.background = cv2.resize(background, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        self._crops = {p: _crop(p) for w in plan["walks"] for p in w.photos}

    def frame(self, index: int) -> tuple[np.ndarray, list[dict]]:
        canvas = self.background.astype(np.float32)
        owner = np.zeros((HEIGHT, WIDTH), np.int32)  # which person's crop covers each pixel, nearest last
        placed = sorted(((w, w.at(index)) for w in self.plan["walks"] if w.at(index)), key=lambda p: p[1][2])
        boxes = {}
        for walk, (cx, cy, width) in placed:
            boxes[walk.pid] = self._paste(canvas, owner, walk, index, cx, cy, width)
        truth = [{"id": w.pid, "identity": w.identity, "box": _clip(boxes[w.pid]),
                  "visible": round(_visible(owner, boxes[w.pid], w.pid), 3)} for w, _ in placed]
        return np.clip(canvas, 0, 255).astype(np.uint8), sorted(truth, key=lambda t: t["id"])

    def _paste(self, canvas, owner, walk: Walk, index: int, cx: float, cy: float, width: float) -> list[int]:
        scale = width / (FACE_BOX[2] - FACE_BOX[0] + 1)
        crop = self._crops[walk.photos[0] if index < walk.turn else walk.photos[1]]
        side = max(int(round(crop.shape[0] * scale)), 2)
        patch = self._cv2.resize(crop, (side, side), interpolation=self._cv2.INTER_AREA).astype(np.float32)
        face_cx = ((FACE_BOX[0] + FACE_BOX[2]) / 2 - CROP[0]) * scale
        face_cy = ((FACE_BOX[1] + FACE_BOX[3]) / 2 - CROP[1]) * scale
        left, top = int(round(cx - face_cx)), int(round(cy - face_cy))
        x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, WIDTH), min(top + side, HEIGHT)
        if x1 > x0 and y1 > y0:
            mask = _soft_mask(side)[y0 - top : y1 - top, x0 - left : x1 - left]
            region = patch[y0 - top : y1 - top, x0 - left : x1 - left]
            canvas[y0:y1, x0:x1] = mask * region + (1 - mask) * canvas[y0:y1, x0:x1]
            owner[y0:y1, x0:x1][mask[..., 0] > 0.5] = walk.pid
        origin = (left, top)
        return [int(round(origin[i % 2] + (v - CROP[i % 2]) * scale)) for i, v in enumerate(FACE_BOX)]


def _clip(box: list[int]) -> list[int]:
    return [max(box[0], 0), max(box[1], 0), min(box[2], WIDTH - 1), min(box[3], HEIGHT - 1)]


def _visible(owner: np.ndarray, box: list[int], pid: int) -> float:
    """The fraction of the (unclipped) face box that shows this person: the rest is hidden or out of the frame."""
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    left, top, right, bottom = _clip(box)
    if right < left or bottom < top:
        return 0.0
    return float(np.count_nonzero(owner[top : bottom + 1, left : right + 1] == pid)) / area


def write_scene(plan: dict, path: Path) -> tuple[Path, list]:
    """Renders a planned scene into ``path`` (an .mp4, written whole then renamed); returns it and the faces per frame."""
    import cv2

    renderer = SceneRenderer(plan)
    partial = path.with_name(f".{path.stem}.partial.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    faces = []
    for index in range(plan["frames"]):
        frame, truth = renderer.frame(index)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        faces.append(truth)
    writer.release()
    os.replace(partial, path)
    return path, faces


def make_scene(seed: int, people: int = 3, strangers: int = 1, seconds: float = 12.0,
               folder: str | Path | None = None) -> tuple[Path, dict]:
    """(the scene as an .mp4 in ``folder``, its truth): see :func:`plan_scene` and :class:`SceneRenderer`.
    Truth: {"people": [{"id", "identity", "photos"}], "enrolled": {name: photo}, "faces": [per frame: [...]]}."""
    plan = plan_scene(seed, people, strangers, seconds)
    folder = Path(folder or tempfile.mkdtemp(prefix="facestyle-scenes-"))
    folder.mkdir(parents=True, exist_ok=True)
    path, faces = write_scene(plan, folder / f"scene-{seed}.mp4")
    truth = {"seed": seed, "fps": FPS, "size": [WIDTH, HEIGHT], "frames": plan["frames"],
             "people": [{"id": w.pid, "identity": w.identity, "photos": w.photos, "turn": w.turn}
                        for w in plan["walks"]],
             "enrolled": plan["enrolled"], "faces": faces}
    return path, truth


# -- the gallery ----------------------------------------------------------------------------------------------
def build_gallery(analyzer, enrolled: dict, size: int, work: Path, seed: int = 0):
    """A fresh gallery in ``work``: each of ``enrolled`` ({name: photo}) and distractors up to ``size`` people,
    one photo each (embeddings cached in ``work``). Returns (gallery, names whose photo showed no face)."""
    from facestyle.face.evaluation import EmbeddingCache, embed_files
    from facestyle.face.gallery import Gallery

    pool = distractor_pool()
    order = np.random.default_rng(seed).permutation(len(pool))
    photos = dict(enrolled)
    for i in order[: max(size - len(enrolled), 0)]:
        photos[pool[i][0]] = str(pool[i][1][0])
    embedded = embed_files(analyzer, [Path(p) for p in photos.values()], EmbeddingCache(work / "embeddings.sqlite"),
                           progress=False)
    location = work / "gallery.db"
    for stale in work.glob("gallery.db*"):
        stale.unlink()
    gallery = Gallery.open(location, analyzer.embedder.identity)
    faceless = []
    for name, photo in photos.items():
        found, vector = embedded[Path(photo)]
        if not found:
            faceless.append(name)
            continue
        gallery.add(name, vector, hashlib.sha256(Path(photo).read_bytes()).hexdigest(), photo)
    return gallery, faceless


# -- watching -------------------------------------------------------------------------------------------------
def run_watch(video: Path, analyzer, gallery, options: dict, keep_frame: int | None = None) -> dict:
    """One stream as fast as it runs: {frame: [(track, box, identity)]}, wall and CPU seconds, and the frame
    ``keep_frame``'s pixels and faces (for an annotated picture)."""
    from facestyle.streams import FrameResult, watch

    hyps, kept = {}, None
    wall, cpu = time.perf_counter(), time.process_time()
    for item in watch([str(video)], analyzer, gallery, keep_pixels=keep_frame is not None, **options):
        if isinstance(item, FrameResult):
            hyps[item.frame] = [(f.track, list(f.box), f.identity) for f in item.faces]
            if item.frame == keep_frame:
                kept = (item.pixels, [f.to_json() for f in item.faces])
    return {"hyps": hyps, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "kept": kept}


def realtime_streams(video: Path, analyzer, gallery, options: dict, most: int) -> list[dict]:
    """Copies of ``video`` watched at once at its frame rate, 1, 2, ... up to ``most``, until one copy drops
    MAX_DROPPED of its frames or more: one trial per count."""
    from facestyle.streams import StreamWatch

    trials = []
    for count in range(1, most + 1):
        stream_watch = StreamWatch([str(video)] * count, analyzer, gallery, realtime=True, **options)
        for _ in stream_watch:
            pass
        sources = stream_watch.summary()["sources"]
        dropped = max(s["dropped"] / max(s["frames"] + s["dropped"], 1) for s in sources)
        trials.append({"streams": count, "worst_dropped": round(dropped, 4)})
        if dropped >= MAX_DROPPED:
            break
    return trials


# -- scoring --------------------------------------------------------------------------------------------------
def _distances(truth_boxes: list, boxes: list) -> np.ndarray:
    """1 - IoU of each truth box with each found box, NaN (no match) under MATCH_IOU: motmetrics' convention
    (its own iou_matrix uses np.asfarray, which NumPy 2 removed)."""
    if not truth_boxes or not boxes:
        return np.empty((len(truth_boxes), len(boxes)))
    distance = 1 - _iou(truth_boxes, boxes)
    return np.where(distance <= 1 - MATCH_IOU, distance, np.nan)


def _named_right(truth_identity: str, identity: str | None) -> bool:
    return identity == (UNKNOWN if truth_identity == STRANGER else truth_identity)


def _iou(a, b) -> np.ndarray:
    from facestyle.streams.tracker import iou_matrix

    return iou_matrix(np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4))


def _without_hidden(found: list, scored: list, hidden: list) -> list:
    """The hypotheses, less those that cover a hidden face better than any scored one (and at MATCH_IOU)."""
    if not hidden or not found:
        return found
    boxes = [h[1] for h in found]
    to_hidden = _iou(boxes, [t["box"] for t in hidden]).max(axis=1)
    to_scored = _iou(boxes, [t["box"] for t in scored]).max(axis=1) if scored else np.zeros(len(found))
    return [h for h, a, b in zip(found, to_hidden, to_scored) if not (a >= MATCH_IOU and a > b)]


def _matches(accumulator, found_by_frame: dict) -> dict:
    """{frame id: {truth id: track}}: the pairs motmetrics matched (matches and switches), from its events."""
    events = accumulator.mot_events
    pairs = events[events.Type.isin(["MATCH", "SWITCH"])]
    out = {frame: {} for frame in found_by_frame}
    for (frame, _), row in pairs.iterrows():
        out[frame][int(row.OId)] = int(row.HId)
    return out


def score_scene(truth: dict, hyps: dict, accumulator) -> dict:
    """Feed one scene into ``accumulator`` (motmetrics) and count its face-frames. Truth faces under
    SCORED_VISIBLE are left out, and so are the hypotheses that cover only them (a face the tracker keeps
    through an occlusion is neither a hit nor a false positive)."""
    frames = {}
    for index, faces in enumerate(truth["faces"]):
        scored = [t for t in faces if t["visible"] >= SCORED_VISIBLE]
        found = _without_hidden(hyps.get(index, []), scored, [t for t in faces if t["visible"] < SCORED_VISIBLE])
        distances = _distances([t["box"] for t in scored], [h[1] for h in found])
        accumulator.update([t["id"] for t in scored], [h[0] for h in found], distances, frameid=index)
        frames[index] = (scored, found)
    matches = _matches(accumulator, frames)
    counts = {"faces": 0, "right": 0, "named": 0, "wrong_named": 0}
    first_seen, first_right = {}, {}
    for index, (scored, found) in frames.items():
        matched, identity_of = matches[index], {h[0]: h[2] for h in found}
        truth_of_track = {matched[t["id"]]: t for t in scored if t["id"] in matched}
        for t in scored:
            first_seen.setdefault(t["id"], index)
            right = _named_right(t["identity"], identity_of.get(matched.get(t["id"])))
            counts["faces"] += 1
            counts["right"] += right
            if right and t["identity"] != STRANGER:
                first_right.setdefault(t["id"], index)
        for track, _, identity in found:
            if identity not in (None, UNKNOWN):
                owner = truth_of_track.get(track)
                counts["named"] += 1
                counts["wrong_named"] += owner is None or owner["identity"] != identity
    enrolled = [p["id"] for p in truth["people"] if p["identity"] != STRANGER]
    delays = [first_right[p] - first_seen[p] if p in first_right else None for p in enrolled if p in first_seen]
    return {**counts, "delays": delays}


def summarise(name: str, scenes: list[dict], accumulators: list, runs: list[dict]) -> dict:
    import motmetrics as mm

    metrics = mm.metrics.create().compute_many(accumulators, metrics=["idf1", "mota", "num_switches"],
                                               names=[str(i) for i in range(len(accumulators))], generate_overall=True)
    overall = metrics.loc["OVERALL"]
    total = {k: sum(s[k] for s in scenes) for k in ("faces", "right", "named", "wrong_named")}
    delays = [d for s in scenes for d in s["delays"]]
    median = float(np.median([np.inf if d is None else d for d in delays])) if delays else float("inf")
    frames = sum(len(r["hyps"]) for r in runs)
    wall, cpu = sum(r["wall_s"] for r in runs), sum(r["cpu_s"] for r in runs)
    return {"config": name, "idf1": round(float(overall["idf1"]), 4), "mota": round(float(overall["mota"]), 4),
            "id_switches": int(overall["num_switches"]),
            "identity_accuracy": round(total["right"] / max(total["faces"], 1), 4),
            "wrong_name_rate": round(total["wrong_named"] / max(total["named"], 1), 4),
            "median_frames_to_name": None if np.isinf(median) else median,
            "never_named": sum(d is None for d in delays), "people_enrolled": len(delays),
            "face_frames": total["faces"], "named_face_frames": total["named"],
            "frames": frames, "fps": round(frames / max(wall, 1e-9), 3), "cpu_s_per_frame": round(cpu / max(frames, 1), 4)}


def check_goals(rows: dict) -> list[dict]:
    """Each goal of GOALS against the measured rows: the target (a number, or another config's figure, or for
    CPU per frame a fraction of the per-frame loop's), the value, and whether it passed."""
    out = []
    for config, metric, sense, target in GOALS:
        value = rows[config].get(metric)
        if isinstance(target, str):
            target = rows[target].get(metric)
        elif metric == "cpu_s_per_frame":
            target = round(target * rows["per-frame"]["cpu_s_per_frame"], 4)
        ok = value is not None and target is not None and (value >= target if sense == "min" else value <= target)
        out.append({"config": config, "metric": metric, "goal": f"{'>=' if sense == 'min' else '<='} {target}",
                    "value": value, "pass": bool(ok)})
    return out


# -- output ---------------------------------------------------------------------------------------------------
PLOTTED = [("IDF1", "idf1", 1.0), ("identity accuracy", "identity_accuracy", 1.0),
           ("wrong-name rate", "wrong_name_rate", None), ("CPU ms per frame", "cpu_s_per_frame", None)]
COLOURS = [(150, 150, 150), (31, 119, 180), (44, 160, 44), (255, 127, 14)]


def plot(rows: list[dict], out: Path, title: str) -> None:
    """One panel per figure of PLOTTED, one bar per configuration."""
    from PIL import Image, ImageDraw

    panel, height, top, bottom = 230, 380, 50, 60
    image = Image.new("RGB", (panel * len(PLOTTED) + 20, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), title, fill="black")
    for p, (label, key, ceiling) in enumerate(PLOTTED):
        scale = 1000.0 if key == "cpu_s_per_frame" else 1.0
        values = [(r.get(key) or 0.0) * scale for r in rows]
        ceiling = ceiling or max(max(values) * 1.15, 1e-9)
        x0 = 20 + p * panel
        draw.text((x0, top - 18), label, fill="black")
        draw.line([(x0, height - bottom), (x0 + panel - 30, height - bottom)], fill="black")
        bar = (panel - 40) // len(rows)
        for i, (row, value) in enumerate(zip(rows, values)):
            left = x0 + 5 + i * bar
            y = height - bottom - value / ceiling * (height - top - bottom)
            draw.rectangle([left, y, left + bar - 8, height - bottom], fill=COLOURS[i % len(COLOURS)])
            draw.text((left, y - 14), f"{value:.3g}", fill="black")
            draw.text((left, height - bottom + 6 + 14 * (i % 2)), row["config"], fill="black")
    _save(out, lambda partial: image.save(partial, format="PNG"))


def write_frame_png(kept, out: Path) -> None:
    """The kept frame with its tracks' boxes and names, drawn by the code `facestyle watch --out` uses."""
    import cv2

    from facestyle.streams.annotate import annotate

    pixels, faces = kept
    picture = cv2.cvtColor(annotate(pixels, faces, None), cv2.COLOR_RGB2BGR)
    _save(out, lambda partial: cv2.imwrite(str(partial), picture))


def _save(out: Path, write) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    write(partial)
    os.replace(partial, out)


# -- the run --------------------------------------------------------------------------------------------------
def make_scenes(args, work: Path) -> list[tuple[Path, dict]]:
    seeds = range(args.seed, args.seed + args.scenes)
    return [make_scene(s, args.people, args.strangers, args.seconds, work / "scenes") for s in seeds]


def unname_faceless(scenes: list, faceless: list) -> None:
    """An enrolled person whose enrolment photo showed no face is not in the gallery: a stranger to it."""
    for _, truth in scenes:
        for item in [p for p in truth["people"]] + [f for faces in truth["faces"] for f in faces]:
            if item["identity"] in faceless:
                item["identity"] = STRANGER


def measure(name: str, options: dict, scenes: list, analyzer, gallery, keep: tuple | None) -> tuple[dict, object]:
    import motmetrics as mm

    runs, scored, accumulators, kept = [], [], [], None
    for number, (video, truth) in enumerate(scenes):
        run = run_watch(video, analyzer, gallery, options, keep[1] if keep and number == 0 else None)
        kept = kept or run["kept"]
        accumulators.append(mm.MOTAccumulator(auto_id=False))
        scored.append(score_scene(truth, run["hyps"], accumulators[-1]))
        runs.append(run)
        print(f"  {name} scene {number}: {len(run['hyps'])} frames in {run['wall_s']:.1f} s", file=sys.stderr)
    return summarise(name, scored, accumulators, runs), kept


def busiest_frame(truth: dict) -> int:
    """The frame with the most fully visible faces (the first such): the one worth a picture."""
    return max(range(len(truth["faces"])), key=lambda i: (sum(f["visible"] >= 0.99 for f in truth["faces"][i]), -i))


def run(args) -> dict:
    from _machine import cpu_model
    from facestyle.face.analyzer import FaceAnalyzer

    work = Path(args.work or tempfile.mkdtemp(prefix="facestyle-streams-bench-"))
    started = time.perf_counter()
    scenes = make_scenes(args, work)
    enrolled = {name: photo for _, truth in scenes for name, photo in truth["enrolled"].items()}
    analyzer = FaceAnalyzer.from_engines(args.engines)
    gallery, faceless = build_gallery(analyzer, enrolled, args.gallery_size, work)
    unname_faceless(scenes, faceless)
    keep = ("tracked-d1", busiest_frame(scenes[0][1])) if args.frame_png else None
    rows, kept = {}, None
    for name, options in CONFIGS:
        rows[name], picture = measure(name, options, scenes, analyzer, gallery, keep if keep and keep[0] == name else None)
        kept = kept or picture
    clip, _ = make_scene(args.seed + 1000, args.people, args.strangers, args.realtime_seconds, work / "scenes")
    for name, options in CONFIGS:
        trials = realtime_streams(clip, analyzer, gallery, options, args.most_streams)
        passed = [t["streams"] for t in trials if t["worst_dropped"] < MAX_DROPPED]
        rows[name].update(realtime_streams=max(passed, default=0), realtime_trials=trials)
    if args.frame_png and kept:
        write_frame_png(kept, Path(args.frame_png))
    return {"machine": cpu_model(), "cores": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "model": f"face-embed {analyzer.embedder.identity.sha256[:12]}, threshold {analyzer.threshold}",
            "scenes": {"count": len(scenes), "seconds": args.seconds, "fps": FPS, "size": [WIDTH, HEIGHT],
                       "people": args.people, "strangers": args.strangers, "seeds": [t["seed"] for _, t in scenes],
                       "truth_faces": sum(len(f) for _, t in scenes for f in t["faces"])},
            "gallery_people": len(gallery.people()), "enrolment_photos_without_face": faceless,
            "scoring": {"match_iou": MATCH_IOU, "scored_visible": SCORED_VISIBLE, "max_dropped": MAX_DROPPED},
            "configs": [{"config": n, "options": o, **{k: v for k, v in rows[n].items() if k != "config"}}
                        for n, o in CONFIGS],
            "goals": check_goals(rows), "seconds": round(time.perf_counter() - started, 1)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write a PNG of the figures per configuration here")
    parser.add_argument("--frame-png", type=Path, help="write one annotated frame (tracked-d1, first scene) here")
    parser.add_argument("--quick", action="store_true", help="one short scene, for a smoke run")
    parser.add_argument("--work", help="folder for the scenes, embeddings and gallery (default: a new temp folder)")
    parser.add_argument("--engines", default=None, help="face engines folder (default: facestyle's)")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=9.0, help="length of each scene")
    parser.add_argument("--people", type=int, default=3, help="enrolled people per scene")
    parser.add_argument("--strangers", type=int, default=1, help="strangers per scene")
    parser.add_argument("--gallery-size", type=int, default=200, help="people in the gallery, distractors included")
    parser.add_argument("--realtime-seconds", type=float, default=5.0, help="length of the real-time clip")
    parser.add_argument("--most-streams", type=int, default=6, help="most real-time streams tried at once")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.scenes, args.seconds, args.people, args.realtime_seconds, args.most_streams = 1, 3.0, 2, 2.0, 1
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.json:
        _save(args.json, lambda partial: partial.write_text(text + "\n"))
    if args.plot:
        plot(result["configs"], args.plot, f"tracked faces in 960x540 15 fps scenes, {result['machine']}")
    print(text)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
