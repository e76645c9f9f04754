"""One-shot identification on real photos: LFW View 1 identities, one photo enrolled per person.

    python benchmarks/one_shot_lfw.py --root ../shared/data/lfw-view1 --json benchmarks/results/one-shot-lfw-view1.json

People with several images: the first (by file name) is enrolled, every other one is a query, and the
top-1 identity must be that person. People with a single image are never enrolled: their queries
must come back "unknown". Uses facestyle's pipeline and gallery at the model manifest's threshold;
embeddings come from the same cache as `facestyle eval-lfw`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--engines", default=None)
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()

    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.evaluation import EmbeddingCache, default_cache_path, embed_files
    from facestyle.face.gallery import Gallery

    started = time.perf_counter()
    folder = args.root / "lfw-deepfunneled" if (args.root / "lfw-deepfunneled").is_dir() else args.root
    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted(folder.iterdir()) if d.is_dir()}
    analyzer = FaceAnalyzer.from_engines(args.engines)
    files = [f for images in people.values() for f in images]
    embedded = embed_files(analyzer, files, EmbeddingCache(default_cache_path()))

    with tempfile.TemporaryDirectory() as tmp:
        gallery = Gallery.open(Path(tmp) / "g.db", analyzer.embedder.identity)
        enrolled = {name: images for name, images in people.items() if len(images) >= 2}
        for name, images in enrolled.items():
            gallery.add(name, embedded[images[0]][1], images[0].name, str(images[0]))
        queries = [(name, f) for name, images in enrolled.items() for f in images[1:]]
        strangers = [f for name, images in people.items() if len(images) == 1 for f in images]
        t = analyzer.threshold
        known = gallery.identify(np.stack([embedded[f][1] for _, f in queries]), t, top_k=1)
        unknown = gallery.identify(np.stack([embedded[f][1] for f in strangers]), t, top_k=1)

    right = np.array([r.matches[0].name == name for (name, _), r in zip(queries, known)])
    d_known = np.array([r.matches[0].distance for r in known])
    d_strangers = np.array([r.matches[0].distance for r in unknown])
    by_threshold = {
        str(th): {
            "open_set_accuracy": float(np.mean(right & (d_known <= th))),  # right person AND within the threshold
            "false_unknown_rate": float(np.mean(d_known > th)),
            "unknown_rejection_rate": float(np.mean(d_strangers > th)),
        }
        for th in sorted({t, 0.55, 0.5, 0.45, 0.4}, reverse=True)
    }
    report = {
        "enrolled_people": len(enrolled),
        "queries_of_enrolled": len(queries),
        "strangers": len(strangers),
        "top1_accuracy": float(right.mean()),  # nearest person is right, whatever the distance
        "model_threshold": t,
        "threshold_source": analyzer.embedder.threshold_source,
        "by_threshold": by_threshold,
        "no_face": int(sum(not embedded[f][0] for f in files)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
