"""Who is unknown in 1:N identification: rules for "unknown" compared on LFW View 1 as the gallery grows.

    python benchmarks/open_set_lfw.py --root ../shared/data/lfw-view1 --engines engines \\
        --json benchmarks/results/open-set-lfw-view1.json

Open-set trials: a gallery of N people drawn at random (one photo enrolled each); probes are the other
photos of enrolled people (should be named right) and every photo of people not enrolled (strangers, should
be "unknown"). The people of pairsDevTrain.txt are where rules are chosen (the margin is fitted there);
the people of pairsDevTest.txt, disjoint from them, are where they are reported. DevTest has 963 people,
so its largest gallery is 500 (463 strangers left); N=1000 is measured on the train side only.

Rules, each for a target false positive identification rate (FPIR: strangers named):
  pair             the pair threshold (the manifest's, ~1% false accepts per pair) used as it is
  gallery-normal   t_N with 1-(1-F(t_N))^N = FPIR, F a normal fitted to the gallery's own impostor distances
  gallery-power-normal  the same, the normal fitted to d**k, k making their skew zero (facestyle's rule)
  gallery-power-1.2     the same with k fixed at 1.2 (the zero-skew power of all train impostor pairs)
  gallery-empirical  the same with F the empirical distribution of those distances
  train-empirical  the same with F the empirical distribution of every impostor pair among the train photos
  nearest-other    the FPIR quantile of each enrolled person's distance to their nearest other enrolled person
  margin           the pair threshold, and the best person at least m closer than the second (m fitted on train)
  per-person       t_N per enrolled person, from a normal fitted to that person's own impostor distances
Every calibrated threshold is capped at the pair threshold. Embeddings come from the same cache as
``facestyle eval-lfw``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np

from _machine import cpu_model  # benchmarks/ is on sys.path when a script runs

SIZES = (10, 50, 200, 500, 1000)
TARGETS = (0.01, 0.001)
TRIALS = {10: 300, 50: 120, 200: 40, 500: 16, 1000: 8}
RULES = ("pair", "gallery-normal", "gallery-power-normal", "gallery-power-1.2", "gallery-empirical", "train-empirical",
         "nearest-other", "margin", "per-person")


def pairs_people(pairs_file: Path) -> set[str]:
    names = set()
    for line in pairs_file.read_text().splitlines()[1:]:
        fields = line.split("\t")
        names.update((fields[0],) if len(fields) == 3 else (fields[0], fields[2]))
    return names


def side(embedded: dict, folder: Path, names: set[str]) -> list[np.ndarray]:
    """Per person (sorted by name) the embeddings of their photos, in file order."""
    return [np.stack([embedded[f][1] for f in sorted((folder / name).glob("*.jpg"))]).astype(np.float64)
            for name in sorted(names)]


def pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def trial(people: list[np.ndarray], n: int, rng) -> dict:
    """One open-set trial: a gallery of n people, its genuine probes (with the right row) and its strangers."""
    chosen = rng.permutation(len(people))
    enrolled, others = chosen[:n], chosen[n:]
    first = rng.integers(0, [len(people[p]) for p in enrolled])  # which photo of each is enrolled
    gallery = np.stack([people[p][i] for p, i in zip(enrolled, first)])
    genuine, right = [], []
    for row, (p, i) in enumerate(zip(enrolled, first)):
        rest = np.delete(people[p], i, axis=0)
        genuine.append(rest)
        right.extend([row] * len(rest))
    strangers = np.concatenate([people[p] for p in others])
    return {"gallery": gallery, "genuine": np.concatenate(genuine), "right": np.asarray(right, np.int64),
            "strangers": strangers}


def top2(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nearest row, its distance, second nearest distance) per probe."""
    part = np.partition(d, 1, axis=1)[:, :2] if d.shape[1] > 1 else np.c_[d, np.full(len(d), np.inf)]
    return d.argmin(1), part[:, 0], part[:, 1]


def sorted_quantile(ascending: np.ndarray, q: float) -> float:
    """np.quantile's (linear) for values already sorted: no sort of millions of distances per trial."""
    at = q * (len(ascending) - 1)
    low = int(np.floor(at))
    high = min(low + 1, len(ascending) - 1)
    return float(ascending[low] + (at - low) * (ascending[high] - ascending[low]))


def per_pair_rate(fpir: float, n: int) -> float:
    return float(-np.expm1(np.log1p(-fpir) / n))


def gallery_thresholds(gallery: np.ndarray, pair: float, fpir: float, reference: np.ndarray) -> dict:
    """Per rule the threshold (a number, or one per enrolled person) for this gallery."""
    from facestyle.face.openset import normal_tail_threshold, power_normal_threshold

    n = len(gallery)
    rate = per_pair_rate(fpir, n)
    d = pairwise(gallery, gallery)
    impostor = d[np.triu_indices(n, 1)]
    own = np.where(np.eye(n, dtype=bool), np.nan, d)
    z = NormalDist().inv_cdf(rate)
    per_person = np.nanmean(own, 1) + z * np.nanstd(own, 1)
    return {
        "pair": pair,
        "gallery-normal": min(pair, normal_tail_threshold(impostor, rate)),
        "gallery-power-normal": min(pair, power_normal_threshold(impostor, rate)),
        "gallery-power-1.2": min(pair, max(0.0, normal_tail_threshold(impostor ** 1.2, rate)) ** (1 / 1.2)),
        "gallery-empirical": min(pair, float(np.quantile(impostor, rate))),
        "train-empirical": min(pair, sorted_quantile(reference, rate)),
        "nearest-other": min(pair, float(np.quantile(np.nanmin(own, 1), fpir))),
        "margin": pair,
        "per-person": np.minimum(pair, per_person),
    }


def decide(threshold, nearest, d1) -> np.ndarray:
    limit = threshold[nearest] if isinstance(threshold, np.ndarray) else threshold
    return d1 <= limit


def run_side(people: list[np.ndarray], sizes, pair: float, reference: np.ndarray, seed: int) -> dict:
    """Per size and target the raw counts of each rule, and the strangers' margins (to fit ``margin``)."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in sizes:
        if n >= len(people) - 50:
            continue
        counts = {fpir: {r: {"strangers_named": 0, "genuine_right": 0, "thresholds": []} for r in RULES} for fpir in TARGETS}
        margins = {"strangers": [], "genuine": [], "genuine_ok": []}
        probes = {"strangers": 0, "genuine": 0}
        for _ in range(TRIALS[n]):
            t = trial(people, n, rng)
            s_near, s_d1, s_d2 = top2(pairwise(t["strangers"], t["gallery"]))
            g_near, g_d1, g_d2 = top2(pairwise(t["genuine"], t["gallery"]))
            probes["strangers"] += len(s_d1)
            probes["genuine"] += len(g_d1)
            margins["strangers"].append(np.where(s_d1 <= pair, s_d2 - s_d1, -1.0))
            margins["genuine"].append(np.where(g_d1 <= pair, g_d2 - g_d1, -1.0))
            margins["genuine_ok"].append(g_near == t["right"])
            for fpir in TARGETS:
                for rule, threshold in gallery_thresholds(t["gallery"], pair, fpir, reference).items():
                    c = counts[fpir][rule]
                    c["strangers_named"] += int(decide(threshold, s_near, s_d1).sum())
                    c["genuine_right"] += int((decide(threshold, g_near, g_d1) & (g_near == t["right"])).sum())
                    c["thresholds"].append(float(np.mean(threshold)))
        out[n] = {"counts": counts, "probes": probes, "margins": {k: np.concatenate(v) for k, v in margins.items()}}
    return out


def fitted_margins(train: dict) -> dict:
    """Per size and target the margin m at which the pair threshold and d2 - d1 >= m name FPIR of train's strangers."""
    return {n: {fpir: max(0.0, float(np.quantile(r["margins"]["strangers"], 1 - fpir))) for fpir in TARGETS}
            for n, r in train.items()}


def apply_margin(result: dict, margin: dict) -> None:
    for n, r in result.items():
        m = r["margins"]
        for fpir in TARGETS:
            c = r["counts"][fpir]["margin"]
            c["strangers_named"] = int((m["strangers"] >= margin[n][fpir]).sum())
            c["genuine_right"] = int(((m["genuine"] >= margin[n][fpir]) & m["genuine_ok"]).sum())
            c["thresholds"] = [margin[n][fpir]]


def table(result: dict) -> dict:
    rows = {}
    for n, r in result.items():
        rows[str(n)] = {"gallery_people": n, "trials": TRIALS[n], "stranger_probes": r["probes"]["strangers"],
                        "genuine_probes": r["probes"]["genuine"], "rules": {}}
        for fpir in TARGETS:
            rows[str(n)]["rules"][str(fpir)] = {
                rule: {"fpir": round(c["strangers_named"] / r["probes"]["strangers"], 5),
                       "named_right": round(c["genuine_right"] / r["probes"]["genuine"], 4),
                       ("margin" if rule == "margin" else "mean_threshold"): round(float(np.mean(c["thresholds"])), 4)}
                for rule, c in r["counts"][fpir].items()}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--engines", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()

    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.evaluation import EmbeddingCache, default_cache_path, embed_files

    started = time.perf_counter()
    folder = args.root / "lfw-deepfunneled"
    train_names, test_names = pairs_people(args.root / "pairsDevTrain.txt"), pairs_people(args.root / "pairsDevTest.txt")
    files = sorted(f for name in sorted(train_names | test_names) for f in (folder / name).glob("*.jpg"))
    with FaceAnalyzer.from_engines(args.engines) as analyzer:
        embedded = embed_files(analyzer, files, EmbeddingCache(default_cache_path()), progress=sys.stderr.isatty())
        pair, pair_source = analyzer.threshold, analyzer.embedder.threshold_source
    train, test = side(embedded, folder, train_names), side(embedded, folder, test_names)
    owner = np.repeat(np.arange(len(train)), [len(p) for p in train])
    every = np.concatenate(train)
    d = pairwise(every, every)
    upper = np.triu_indices(len(every), 1)
    reference = np.sort(d[upper][owner[upper[0]] != owner[upper[1]]])
    del d, upper
    on_train = run_side(train, SIZES, pair, reference, args.seed)
    on_test = run_side(test, SIZES, pair, reference, args.seed + 1)
    margin = fitted_margins(on_train)
    apply_margin(on_train, margin)
    apply_margin(on_test, {n: margin[n] for n in on_test})
    report = {
        "question": "which rule says 'unknown' at a target FPIR as the gallery grows (one photo enrolled per person)",
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "pair_threshold": pair, "pair_threshold_source": pair_source,
        "people": {"train": len(train), "test": len(test)},
        "photos": {"train": int(sum(map(len, train))), "test": int(sum(map(len, test)))},
        "no_face": int(sum(not embedded[f][0] for f in files)),
        "train_impostor_pairs": int(len(reference)),
        "targets": list(TARGETS),
        "rules": list(RULES),
        "devtest": table(on_test),
        "devtrain": table(on_train),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report["devtest"], indent=1))
    if args.json:
        tmp = Path(args.json).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
