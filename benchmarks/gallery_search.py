"""Gallery search at 10^3..10^6 embeddings: exact vs faiss HNSW vs the matrix-product floor, load, PostgreSQL.

    python benchmarks/gallery_search.py [--sizes 1000,10000,100000,1000000] [--engines DIR]
        [--lfw ../shared/data/lfw-view1/lfw-deepfunneled] [--out benchmarks/results] [--no-postgres]

Data: real embeddings made by the runtime (detector, landmarks, alignment, embedding) from every LFW
photo in --lfw (cached in --cache), extended synthetically to each size: new identities are drawn from
a Gaussian fitted to the real people's mean embeddings (mean and full covariance), and each synthetic
photo is such a centre plus a real within-person residual (a real photo minus its person's mean).
Gallery: one photo per person (the real people's first photo, then synthetic people). Queries: the
real people's other photos (held out), plus synthetic second photos.

Measured in the same run for each size: the floor (one bare float32 sgemv over the N x 128 matrix, or
sgemm for a batch of 32), exact search (batch 1 and 32), bulk import (.npz) and load (open + matrix
ready) from SQLite, the faiss HNSW build and query time and recall@1 against exact, and, on a
throwaway PostgreSQL cluster, load and one identify round trip (generation check included).
Boundary: query embeddings in, top-3 people out. Results: <out>/gallery_search-<host>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _machine import cpu_model, timed  # noqa: E402 (after the sys.path line that finds it)


def lfw_embeddings(engines, root: Path, cache: Path) -> tuple[list[str], np.ndarray]:
    """(person per photo, embeddings) of every LFW photo with exactly one face, cached."""
    if cache.exists():
        with np.load(cache, allow_pickle=False) as data:
            return [str(n) for n in data["names"]], data["vectors"]
    from facestyle.face.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer.from_engines(engines)
    names, vectors = [], []
    photos = sorted(root.rglob("*.jpg"))
    for i, photo in enumerate(photos):
        faces = analyzer.faces(str(photo))
        if faces:  # LFW photos are centred on their subject: the largest face is the one
            names.append(photo.parent.name)
            vectors.append(max(faces, key=lambda f: f.area).embedding)
        if i % 500 == 0:
            print(f"embedding LFW: {i}/{len(photos)}", file=sys.stderr, flush=True)
    vectors = np.stack(vectors).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, names=np.array(names), vectors=vectors)
    return names, vectors


def dataset(names: list[str], vectors: np.ndarray, size: int, queries: int, rng) -> dict:
    """Gallery (names, vectors) of ``size`` people and held-out queries, real first then synthetic."""
    people = {}
    for i, n in enumerate(names):
        people.setdefault(n, []).append(i)
    means = {n: vectors[ix].mean(0) for n, ix in people.items()}
    residuals = np.concatenate([vectors[ix] - means[n] for n, ix in people.items() if len(ix) > 1])
    centres = np.stack(list(means.values())).astype(np.float64)
    real = list(people)[:size]
    g_names = list(real)
    g_vectors = [vectors[people[n][0]] for n in real]
    q_vectors = [vectors[i] for n in real for i in people[n][1:]][: queries // 2]
    q_truth = [n for n in real for _ in people[n][1:]][: queries // 2]
    extra = size - len(real)
    if extra > 0:
        mu, cov = centres.mean(0), np.cov(centres, rowvar=False)
        synthetic = rng.multivariate_normal(mu, cov, extra)
        g_vectors.extend(synthetic + residuals[rng.integers(0, len(residuals), extra)])
        g_names.extend(f"synthetic-{i:08d}" for i in range(extra))
        pick = rng.choice(extra, min(extra, queries - len(q_vectors)), replace=False)
        q_vectors.extend(synthetic[pick] + residuals[rng.integers(0, len(residuals), len(pick))])
        q_truth.extend(f"synthetic-{i:08d}" for i in pick)
    return {"names": g_names, "vectors": np.asarray(g_vectors, np.float32),
            "queries": np.asarray(q_vectors, np.float64), "truth": q_truth}


def p50(samples) -> float:
    return round(statistics.median(samples), 3)


def measure(size: int, data: dict, identity, tmp: Path, repeats: int, pg_url: str | None, faiss_max: int,
            pg_max: int) -> dict:
    from facestyle.face.gallery import Gallery, import_file
    from facestyle.face.gallery.search import FaissIndex, exact, hnsw_ef_search

    row: dict = {"gallery_size": size, "dim": identity.dim}
    npz = tmp / f"import-{size}.npz"
    np.savez(npz, names=np.array(data["names"]), vectors=data["vectors"], model=identity.model,
             precision=identity.precision, model_sha256=identity.sha256)
    path = tmp / f"g-{size}.db"
    gallery = Gallery.open(path, identity, search="exact")
    start = time.perf_counter()
    added, _ = import_file(gallery, npz)
    row["import_s"] = round(time.perf_counter() - start, 2)
    gallery.close()
    assert added == size, (added, size)
    start = time.perf_counter()
    gallery = Gallery.open(path, identity, search="exact")
    matrix = gallery.matrix()  # from SQLite rows; snapshot written beside it from 10^4 rows on
    row["load_from_rows_s"] = round(time.perf_counter() - start, 3)
    gallery.close()
    start = time.perf_counter()
    gallery = Gallery.open(path, identity, search="exact")
    matrix = gallery.matrix()
    row["load_s"] = round(time.perf_counter() - start, 3)
    row["matrix_mib"] = round((matrix.vectors.nbytes + matrix.norms.nbytes + matrix.ids.nbytes
                               + matrix.owner.nbytes) / 2**20, 1)
    q = data["queries"]
    x = matrix.vectors
    one, batch = q[:1].astype(np.float32)[0], q[:32].astype(np.float32)
    floor1, exact1, floor32, exact32 = [], [], [], []
    for r in range(repeats):  # interleaved, so machine noise hits both alike
        for samples, fn in ((floor1, lambda: x @ one), (exact1, lambda: gallery.identify(q[r % len(q)], 0.6, 3)),
                            (floor32, lambda: batch @ x.T), (exact32, lambda: gallery.identify(q[:32], 0.6, 3))):
            samples.extend(timed(fn, 1, warmup=0)[0])
    row.update(floor_sgemv_ms=p50(floor1), exact_1_ms=p50(exact1), floor_sgemm32_ms=p50(floor32),
               exact_32_ms=p50(exact32))
    row["exact_1_over_floor"] = round(row["exact_1_ms"] / row["floor_sgemv_ms"], 2)
    row["exact_32_over_floor"] = round(row["exact_32_ms"] / row["floor_sgemm32_ms"], 2)
    truth = [r[0][0] if r else -1 for r in exact(matrix, q, 1)]
    names = matrix.names
    row["exact_top1_correct"] = round(float(np.mean([names[t] == n for t, n in zip(truth, data["truth"])])), 4)
    try:
        if size > faiss_max:
            raise ImportError
        index = FaissIndex(tmp / f"g-{size}.faiss")
        start = time.perf_counter()
        index.sync(matrix)
        row["faiss_build_s"] = round(time.perf_counter() - start, 2)
        row["faiss_ef_search"] = hnsw_ef_search(size)
        got = [r[0][0] if r else -1 for r in index.search(matrix, q, 1)]
        row["faiss_recall_at_1"] = round(float(np.mean([a == b for a, b in zip(got, truth)])), 4)
        row["faiss_1_ms"] = p50(timed(lambda: index.search(matrix, q[:1], 3), repeats)[0])
        row["faiss_32_ms"] = p50(timed(lambda: index.search(matrix, q[:32], 3), max(3, repeats // 3))[0])
        row["faiss_file_mib"] = round((tmp / f"g-{size}.faiss").stat().st_size / 2**20, 1)
        start = time.perf_counter()
        FaissIndex(tmp / f"g-{size}.faiss").sync(matrix)  # a new process: reads the persisted index
        row["faiss_reload_s"] = round(time.perf_counter() - start, 2)
    except ImportError:
        row["faiss"] = "not installed" if size <= faiss_max else f"not run (--faiss-max {faiss_max})"
    gallery.close()
    path.unlink()
    if pg_url and size <= pg_max:
        pg = Gallery.open(pg_url, identity, search="exact")
        start = time.perf_counter()
        import_file(pg, npz)
        row["pg_import_s"] = round(time.perf_counter() - start, 2)
        fresh = Gallery.open(pg_url, identity, search="exact")
        start = time.perf_counter()
        fresh.matrix()
        row["pg_load_s"] = round(time.perf_counter() - start, 3)
        row["pg_identify_1_ms"] = p50(timed(lambda: fresh.identify(q[0], 0.6, 3), repeats)[0])
        row["pg_state_check_ms"] = p50(timed(fresh.store.state, repeats)[0])
        vec = data["vectors"][0]
        counter = iter(range(10**9))
        row["pg_enrol_1_ms"] = p50(timed(lambda: pg.add("pg-bench", vec, f"bench-{next(counter)}"), repeats)[0])
        row["pg_identify_after_enrol_ms"] = p50(timed(
            lambda: (pg.add("pg-bench", vec, f"bench-{next(counter)}"), fresh.identify(q[0], 0.6, 3)), repeats)[0])
        with pg.store.transaction(removal=True) as db:  # empty it for the next size
            db.execute("DELETE FROM embeddings")
            db.execute("DELETE FROM people")
        pg.close()
        fresh.close()
    elif pg_url:
        row["postgres"] = f"not run (--pg-max {pg_max})"
    npz.unlink()
    return row


def plot(rows: list[dict], out: Path, title: str) -> None:
    from PIL import Image, ImageDraw

    series = [("floor sgemv", "floor_sgemv_ms", (120, 120, 120)), ("exact, 1 query", "exact_1_ms", (31, 119, 180)),
              ("faiss HNSW, 1 query", "faiss_1_ms", (214, 39, 40)), ("floor sgemm x32", "floor_sgemm32_ms", (180, 180, 180)),
              ("exact, 32 queries", "exact_32_ms", (44, 160, 44)), ("faiss, 32 queries", "faiss_32_ms", (255, 127, 14))]
    w, h, left, top, bottom = 900, 560, 80, 50, 60
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    xs = [r["gallery_size"] for r in rows]
    values = [r[k] for r in rows for _, k, _ in series if r.get(k)]
    lx0, lx1 = np.log10(min(xs)), np.log10(max(xs)) + 1e-9
    ly0, ly1 = np.floor(np.log10(min(values))), np.ceil(np.log10(max(values)))
    px = lambda v: left + (np.log10(v) - lx0) / (lx1 - lx0) * (w - left - 240)
    py = lambda v: h - bottom - (np.log10(v) - ly0) / (ly1 - ly0) * (h - top - bottom)
    draw.text((left, 15), title, fill="black")
    for e in range(int(ly0), int(ly1) + 1):
        draw.line([(left, py(10**e)), (w - 240, py(10**e))], fill=(230, 230, 230))
        draw.text((10, py(10**e) - 6), f"{10**e:g} ms", fill="black")
    for x in xs:
        draw.text((px(x) - 15, h - bottom + 10), f"{x:.0e}", fill="black")
    draw.text((w // 2 - 100, h - 25), "embeddings in the gallery (log)", fill="black")
    for i, (label, key, colour) in enumerate(series):
        points = [(px(r["gallery_size"]), py(r[key])) for r in rows if r.get(key)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        draw.line([(w - 225, top + 20 * i + 7), (w - 195, top + 20 * i + 7)], fill=colour, width=3)
        draw.text((w - 188, top + 20 * i), label, fill="black")
    image.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parent
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--engines", default=None)
    parser.add_argument("--lfw", type=Path, default=here.parents[1] / "shared/data/lfw-view1/lfw-deepfunneled")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/facestyle/lfw-view1-embeddings.npz")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=here / "results")
    parser.add_argument("--tag", default="2core-cpu")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--faiss-max", type=int, default=10**7, help="largest size to build a faiss index for")
    parser.add_argument("--pg-max", type=int, default=10**6, help="largest size to import into PostgreSQL")
    args = parser.parse_args()

    from facestyle.face.embedder import FaceEmbedder
    from facestyle.face.gallery import AUTO_FAISS_MIN

    identity = FaceEmbedder.from_engines(args.engines).identity
    names, vectors = lfw_embeddings(args.engines, args.lfw, args.cache)
    rng = np.random.default_rng(0)
    cluster = None
    if not args.no_postgres:
        import pgcluster

        if pgcluster.unavailable() is None:
            cluster = pgcluster.Cluster().start()
    rows = []
    try:
        pg_url = cluster.create_database("bench") if cluster else None
        with tempfile.TemporaryDirectory() as tmp:
            for size in (int(s) for s in args.sizes.split(",")):
                data = dataset(names, vectors, size, args.queries, rng)
                row = measure(size, data, identity, Path(tmp), args.repeats, pg_url, args.faiss_max, args.pg_max)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if cluster:
            cluster.stop()
    lfw_people = len(set(names))
    report = {
        "machine": cpu_model(), "model": identity.describe(), "auto_faiss_min": AUTO_FAISS_MIN,
        "data": f"{len(names)} real LFW embeddings of {lfw_people} people (runtime pipeline on {args.lfw.name}), "
                f"extended with synthetic people: centres ~ Gaussian fitted to the real people's means, photos = "
                f"centre + a real within-person residual; queries: held-out real photos, then synthetic",
        "search": "exact: float32 sgemv/sgemm + certified float64 re-rank; faiss: IndexHNSWFlat M=32 efC=80, efSearch = "
                  "search.hnsw_ef_search(N) (384 up to 10^5, 1528 at 10^6) + float64 re-rank",
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gallery_search-{args.tag}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.out / f"gallery_search-{args.tag}.png", f"gallery search, top-3, {cpu_model()}")


if __name__ == "__main__":
    main()
