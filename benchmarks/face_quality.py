"""How verification degrades as face quality drops, and where the quality thresholds go.

    python benchmarks/face_quality.py --root ../shared/data/lfw-view1 --json benchmarks/results/face-quality-lfw-view1.json

On LFW View 1 pairs, photo a is kept as it is and photo b is degraded: shrunk until its face is 100, 60, 50,
40 or 30 px wide, blurred (Gaussian, several sigmas) or saved as a low-quality JPEG. Each b is analysed by
facestyle's pipeline (upsampling as a small face needs it), its quality taken by ``facestyle.face.quality``
and its embedding compared with a's at the model's threshold. A pair's quality is the lower of its two
photos'. The thresholds are chosen on DevTrain (pairs by quality bin: where the error rate rises above twice
that of the undegraded pairs, in bins 0.2 wide) and reported on DevTest. Raw measures are kept so that the parts' shape can be
compared (rank correlation of pair quality with the genuine distance, per way of combining the parts).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np

from _machine import cpu_model

SIZES = (100, 60, 50, 40, 30)  # face width in pixels after shrinking photo b
SIGMAS = (1.0, 2.0, 3.0)  # Gaussian blur of photo b, pixels
JPEG_QUALITIES = (10, 4)
BINS = np.round(np.arange(0.0, 1.0001, 0.2), 2)
ERROR_RISE = 2.0  # a quality bin is poor when its error rate is over this many times the undegraded pairs'


def conditions() -> list[tuple[str, str, float]]:
    return ([("original", "none", 0.0)] + [(f"face {s} px", "size", s) for s in SIZES]
            + [(f"blur sigma {s:g}", "blur", s) for s in SIGMAS] + [(f"jpeg q{q}", "jpeg", q) for q in JPEG_QUALITIES])


def degrade(image, how: str, amount: float, face_width: float):
    from PIL import Image, ImageFilter

    if how == "size" and amount < face_width:
        scale = amount / face_width
        return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    if how == "blur":
        return image.filter(ImageFilter.GaussianBlur(amount))
    if how == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(amount))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def subject(analyzer, pixels: np.ndarray):
    """The face nearest the centre (LFW centres its subject), found with as much upsampling as it needs
    (at most 2), as a one-face Aligned; None when no face is found."""
    from facestyle.face.analyzer import Aligned

    for upsample in (0, 1, 2):
        found = analyzer.align(pixels, upsample=upsample)
        if len(found):
            centre = np.array([pixels.shape[1] / 2, pixels.shape[0] / 2])
            i = int(np.argmin(np.linalg.norm((found.boxes[:, :2] + found.boxes[:, 2:]) / 2 - centre, axis=1)))
            return Aligned(found.boxes[i:i + 1], found.scores[i:i + 1], found.landmarks[i:i + 1], found.chips[i:i + 1])
    return None


def measures_of(aligned) -> list[float]:
    from facestyle.face import quality

    return [float(v[0]) for v in quality._measures(aligned)]


def analyse(analyzer, image) -> dict | None:
    aligned = subject(analyzer, np.asarray(image))
    if aligned is None:
        return None
    return {"measures": measures_of(aligned), "embedding": analyzer.embedder.embed(aligned.chips)[0]}


def chosen_pairs(pairs: list, per_kind: int) -> list:
    """``per_kind`` same and ``per_kind`` different pairs, spread over the file."""
    same = [p for p in pairs if p.same]
    different = [p for p in pairs if not p.same]
    pick = (lambda ps: [ps[i] for i in np.linspace(0, len(ps) - 1, min(per_kind, len(ps))).astype(int)])
    return pick(same) + pick(different)


def run_split(analyzer, pairs: list) -> list[dict]:
    """One record per (pair, condition): same?, found?, distance, a's and b's raw quality measures."""
    from PIL import Image

    records, cache = [], {}
    for index, pair in enumerate(pairs):
        if pair.a not in cache:
            cache[pair.a] = analyse(analyzer, Image.open(pair.a).convert("RGB"))
        a = cache[pair.a]
        photo_b = Image.open(pair.b).convert("RGB")
        b_original = analyse(analyzer, photo_b)
        if a is None or b_original is None:
            continue  # the undegraded pair must have faces for its degradation to mean anything
        width = b_original["measures"][0]
        for name, how, amount in conditions():
            b = b_original if how == "none" else analyse(analyzer, degrade(photo_b, how, amount, width))
            records.append({"pair": index, "condition": name, "same": pair.same, "found": b is not None,
                            "distance": float(np.linalg.norm(a["embedding"] - b["embedding"])) if b else None,
                            "a": a["measures"], "b": b["measures"] if b else None})
    return records


def pair_quality(records: list[dict], combine=None) -> np.ndarray:
    """Each found record's pair quality (the lower of a's and b's), under the module's parts and ``combine``."""
    from facestyle.face import quality

    combine = combine or quality._combine
    a = np.array([r["a"] for r in records]).T
    b = np.array([r["b"] for r in records]).T
    return np.minimum(combine(quality._parts(*a)), combine(quality._parts(*b)))


def errors(same: np.ndarray, distance: np.ndarray, threshold: float) -> dict:
    wrong = np.where(same, distance > threshold, distance <= threshold)
    return {"pairs": int(len(same)), "accuracy": round(float(1 - wrong.mean()), 4) if len(same) else None,
            "false_non_match": round(float(wrong[same].mean()), 4) if same.any() else None,
            "false_match": round(float(wrong[~same].mean()), 4) if (~same).any() else None,
            "genuine_mean_distance": round(float(distance[same].mean()), 4) if same.any() else None}


def by_condition(records: list[dict], threshold: float) -> dict:
    out = {}
    for name, _, _ in conditions():
        rows = [r for r in records if r["condition"] == name]
        found = [r for r in rows if r["found"]]
        same = np.array([r["same"] for r in found], bool)
        q = pair_quality(found) if found else np.zeros(0)
        out[name] = {"found": round(len(found) / max(len(rows), 1), 4), "mean_quality": round(float(q.mean()), 4),
                     "mean_b_width_px": round(float(np.mean([r["b"][0] for r in found])), 1),
                     **errors(same, np.array([r["distance"] for r in found]), threshold)}
    return out


def by_quality(records: list[dict], threshold: float) -> list[dict]:
    found = [r for r in records if r["found"]]
    q = pair_quality(found)
    same = np.array([r["same"] for r in found], bool)
    distance = np.array([r["distance"] for r in found])
    rows = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        inside = (q >= lo) & ((q < hi) | (hi >= 1.0))
        rows.append({"quality": [float(lo), float(hi)], **errors(same[inside], distance[inside], threshold)})
    return rows


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (average ranks are not needed: ties are rare in these measures except at 0 and 1)."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def combiners() -> dict:
    from facestyle.face import quality

    return {"minimum (used)": quality._combine,
            "geometric mean": lambda parts: np.exp(np.log(np.maximum(parts, 1e-9)).mean(axis=1)),
            "arithmetic mean": lambda parts: parts.mean(axis=1)}


def combiner_figures(records: list[dict]) -> dict:
    """How well each way of combining the parts ranks shrunk or blurred genuine pairs by how much farther apart
    the degradation put them (the distance over that of the same pair undegraded; -1: perfectly)."""
    original = {r["pair"]: r["distance"] for r in records if r["condition"] == "original" and r["same"]}
    degraded = [r for r in records if r["found"] and r["same"] and r["condition"] != "original"
                and not r["condition"].startswith("jpeg")]  # compression: no part sees it (see the report)
    growth = np.array([r["distance"] - original[r["pair"]] for r in degraded])
    return {name: round(rank_correlation(pair_quality(degraded, combine), growth), 4)
            for name, combine in combiners().items()}


def threshold_from(bins: list[dict], clean_error: float, floor: float) -> float:
    """The upper edge of the highest bin whose error rate is over ERROR_RISE x ``clean_error`` (at least ``floor``)."""
    limit = ERROR_RISE * max(clean_error, floor)
    poor = [b["quality"][1] for b in bins if b["pairs"] >= 20 and 1 - b["accuracy"] > limit]
    return max(poor, default=0.0)


def split_at(records: list[dict], cut: float, threshold: float, jpeg: bool = True) -> dict:
    """Errors of the pairs at or above a quality ``cut`` and below it (``jpeg``: with the JPEG-degraded pairs,
    which the score does not see)."""
    found = [r for r in records if r["found"] and (jpeg or not r["condition"].startswith("jpeg"))]
    q = pair_quality(found)
    same = np.array([r["same"] for r in found], bool)
    distance = np.array([r["distance"] for r in found])
    return {"at_or_above": errors(same[q >= cut], distance[q >= cut], threshold),
            "below": errors(same[q < cut], distance[q < cut], threshold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--engines", default=None)
    parser.add_argument("--pairs", type=int, default=50, help="same and different pairs taken from each split")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--records", type=Path,
                        help="the raw per-pair records: read from here if the file exists (the report is then made "
                             "again without analysing a photo, e.g. after changing the parts), else written here")
    args = parser.parse_args()

    from facestyle.face import lfw, quality
    from facestyle.face.analyzer import FaceAnalyzer

    started = time.perf_counter()
    analyzer = FaceAnalyzer.from_engines(args.engines)
    t = analyzer.threshold
    if args.records is not None and args.records.is_file():
        saved = json.loads(args.records.read_text())
        splits, seconds = saved["splits"], saved["seconds"]
    else:
        splits = {split: run_split(analyzer, chosen_pairs(lfw.read_pairs(args.root / f"pairs{split}.txt", args.root),
                                                          args.pairs)) for split in ("DevTrain", "DevTest")}
        seconds = round(time.perf_counter() - started, 1)
        if args.records is not None:
            args.records.write_text(json.dumps({"seconds": seconds, "splits": splits}))
    report: dict = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count()}, "model_threshold": t,
                    "threshold_source": analyzer.embedder.threshold_source, "conditions": {}, "by_quality": {}}
    for split, records in splits.items():
        report["conditions"][split] = by_condition(records, t)
        report["by_quality"][split] = by_quality(records, t)
    clean = report["conditions"]["DevTrain"]["original"]
    clean_error = 1 - clean["accuracy"]
    report["combiners_devtrain"] = combiner_figures(splits["DevTrain"])
    report["suggested_devtrain"] = {
        "rule": f"upper edge of the highest quality bin (>= 20 pairs) whose error rate is over {ERROR_RISE:g}x "
                "that of the undegraded pairs",
        "undegraded_error": round(clean_error, 4),
        "min_quality": threshold_from(report["by_quality"]["DevTrain"], clean_error, 0.01)}
    report["used"] = {"DEFAULT_MIN_QUALITY": quality.DEFAULT_MIN_QUALITY, "POOR_ENROLMENT": quality.POOR_ENROLMENT,
                      "parts": {"SIZE_PX": quality.SIZE_PX, "LOG_SHARPNESS": [round(v, 4) for v in quality.LOG_SHARPNESS],
                                "YAW_OFFSET": quality.YAW_OFFSET, "DETECTION_SCORE": quality.DETECTION_SCORE}}
    report["devtest_at_default_min_quality"] = split_at(splits["DevTest"], quality.DEFAULT_MIN_QUALITY, t)
    report["devtest_at_default_min_quality_without_jpeg"] = split_at(splits["DevTest"], quality.DEFAULT_MIN_QUALITY, t,
                                                                     jpeg=False)
    report["devtest_at_poor_enrolment"] = split_at(splits["DevTest"], quality.POOR_ENROLMENT, t)
    report["pairs_per_split"] = {split: len(records) // len(conditions()) for split, records in splits.items()}
    report["seconds"] = seconds  # analysing the photos, on a machine shared with other work
    print(json.dumps({k: v for k, v in report.items() if k != "by_quality"}, indent=1))
    if args.json:
        out = Path(args.json)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, out)


if __name__ == "__main__":
    main()
