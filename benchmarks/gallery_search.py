"""Gallery search time against gallery size (exact numpy search), 10^3 to 10^6 enrolled embeddings.

    python benchmarks/gallery_search.py [--sizes 1000,10000,100000,1000000] [--json out.json]

Timing only: the galleries are synthetic but realistic, real embeddings (skimage's astronaut and
natural crops through the real model) plus Gaussian noise at the spread of real same-person
distances. Boundary: query embeddings in, top-3 people out, for 1 query and for a batch of 32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--engines", default=None)
    parser.add_argument("--json")
    args = parser.parse_args()

    from facestyle.export.sample_inputs import natural_chips
    from facestyle.face.embedder import FaceEmbedder
    from facestyle.face.gallery import Gallery

    embedder = FaceEmbedder.from_engines(args.engines)
    seeds = embedder.embed(natural_chips(8))
    rng = np.random.default_rng(0)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = (seeds[rng.integers(0, len(seeds), size)] + rng.normal(0, 0.04, (size, 128))).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            gallery = Gallery.open(Path(tmp) / "g.db", embedder.identity)
            with gallery._transaction() as db:  # bulk load: one transaction, not one per person
                db.executemany("INSERT INTO people (id, name, created) VALUES (?, ?, 0)", ((i, f"p{i}") for i in range(size)))
                db.executemany("INSERT INTO embeddings (person_id, vector, source_sha256, created) VALUES (?, ?, ?, 0)",
                               ((i, v.tobytes(), str(i)) for i, v in enumerate(vectors)))
            start = time.perf_counter()
            gallery.identify(seeds[:1], 0.6)  # first call loads the vectors
            load_ms = (time.perf_counter() - start) * 1000
            for batch in (1, 32):
                queries = seeds[np.arange(batch) % len(seeds)]
                samples = []
                for _ in range(5):
                    start = time.perf_counter()
                    gallery.identify(queries, 0.6, top_k=3)
                    samples.append((time.perf_counter() - start) * 1000)
                row = {"gallery_size": size, "batch": batch, "p50_ms": round(statistics.median(samples), 2),
                       "first_call_load_ms": round(load_ms, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            gallery.close()
    if args.json:
        Path(args.json).write_text(json.dumps({"search": "exact numpy (float64)", "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
