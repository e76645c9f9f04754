"""The gallery at scale: exact search against a float64 reference, the in-memory matrix following
the store, faiss persisted beside the gallery, `auto`, bulk import, identify timings."""

import json
import os

import numpy as np
import pytest

from conftest import FACES, require_shared
from facestyle.errors import BadInputError, GalleryModelMismatchError
from facestyle.face.gallery import AUTO_FAISS_MIN, Gallery, ModelIdentity, identify_photo, import_file
from facestyle.face.gallery.search import Matrix, exact

MODEL = ModelIdentity("face-embed", "fp32", "e" * 64, dim=128)


def people_like_faces(rng, people: int, max_photos: int):
    """Names and vectors: ``people`` centres at face-embedding spread, 1..max_photos photos each."""
    centres = rng.normal(0, 0.09, (people, 128))
    names, vectors = [], []
    for i, c in enumerate(centres):
        for _ in range(1 + i % max_photos):
            names.append(f"p{i:05d}")
            vectors.append(c + rng.normal(0, 0.03, 128))
    order = rng.permutation(len(names))  # photos of one person are not adjacent
    return [names[i] for i in order], np.asarray(vectors, np.float32)[order]


def reference(names, vectors, queries, k):
    """Per-person minimum distances in float64 from differences, ties by name: the definition."""
    people = sorted(set(names))
    index = {n: i for i, n in enumerate(people)}
    owner = np.array([index[n] for n in names])
    out = []
    x = vectors.astype(np.float64)
    for q in queries:
        d = np.sqrt(((x - q) ** 2).sum(1))
        best = np.full(len(people), np.inf)
        np.minimum.at(best, owner, d)
        order = np.lexsort((np.arange(len(people)), best))[:k]  # people are sorted: index order is name order
        out.append([(people[i], best[i]) for i in order])
    return out


def test_exact_search_gives_the_float64_definitions_top_k(tmp_path):
    rng = np.random.default_rng(7)
    names, vectors = people_like_faces(rng, 4000, 4)  # 10000 embeddings
    queries = np.concatenate([vectors[:25] + rng.normal(0, 0.02, (25, 128)), vectors[40:45],  # near, exact photos
                              rng.normal(0, 0.09, (5, 128))]).astype(np.float64)  # strangers
    matrix = Matrix(128, ("test", 0))
    matrix.extend(np.arange(len(names)), names, vectors)
    full = reference(names, vectors, queries, 10)
    for k in (1, 3, 10):
        got = exact(matrix, queries, k)
        want = [row[:k] for row in full]
        assert [[matrix.names[p] for p, _ in row] for row in got] == [[n for n, _ in row] for row in want]
        err = max(abs(d - w) for g, r in zip(got, want) for (_, d), (_, w) in zip(g, r))
        assert err < 1e-9
    assert all(row[0][1] < 1e-6 for row in exact(matrix, queries[25:30], 1))  # a photo finds itself at 0


def test_ties_and_duplicates_are_ordered_by_name():
    matrix = Matrix(4, ("t", 0))
    same = np.ones((6, 4), np.float32)
    matrix.extend(np.arange(6), ["f", "b", "d", "a", "e", "c"], same)
    ((found),) = exact(matrix, np.zeros((1, 4)), 4)
    assert [matrix.names[p] for p, _ in found] == ["a", "b", "c", "d"] and {d for _, d in found} == {2.0}


def test_a_batch_widens_only_the_queries_whose_candidates_cannot_prove_their_top_k():
    """1000 people tie at one point, more than the first candidates hold: queries near it widen, alone."""
    from facestyle.face.gallery import search

    rng = np.random.default_rng(3)
    names = [f"n{i:04d}" for i in rng.permutation(1000)] + [f"far{i:04d}" for i in range(3000)]
    vectors = np.concatenate([np.full((1000, 128), 0.05), rng.normal(0, 0.09, (3000, 128))]).astype(np.float32)
    matrix = Matrix(128, ("t", 0))
    matrix.extend(np.arange(4000), names, vectors)
    queries = np.concatenate([np.zeros((1, 128)), vectors[1000:1003] + 0.001]).astype(np.float64)
    passes = []
    certified = search._certified
    spy = lambda *args: passes.append((len(args[1]), args[3])) or certified(*args)  # records the queries of each pass
    search._certified = spy
    try:
        got = exact(matrix, queries, 3)
    finally:
        search._certified = certified
    want = reference(names, vectors, queries, 3)
    assert [[matrix.names[p] for p, _ in row] for row in got] == [[n for n, _ in row] for row in want]
    assert [matrix.names[p] for p, _ in got[0]] == ["n0000", "n0001", "n0002"]
    # the batch once; then alone, with 8x and 64x the candidates, only queries whose top-3 holds tied people
    assert passes[0] == (4, 35) and set(passes[1:]) == {(1, 280), (1, 2240)} and len(passes) < 1 + 2 * 4


def test_the_matrix_follows_the_store(tmp_path):
    g = Gallery.open(tmp_path / "g.db", MODEL, search="exact")
    other = Gallery.open(tmp_path / "g.db", MODEL, search="exact")  # another reader, as another process would be
    rng = np.random.default_rng(1)
    v = rng.normal(0, 0.09, (3, 128)).astype(np.float32)
    g.add("ann", v[0], "a")
    assert other.identify(v[0], 0.6)[0].identity == "ann"
    before = other.matrix()
    g.add("bob", v[1], "b")
    assert other.matrix() is before and before.n == 2  # extended in place: only the new row was fetched
    assert other.identify(v[1], 0.6)[0].identity == "bob"
    g.remove("ann")
    after = other.matrix()
    assert after is not before and after.n == 1 and after.names == ["bob"]  # a removal rebuilds it
    assert other.identify(v[0], 0.6)[0].matches[0].name == "bob"


def test_auto_picks_exact_below_the_measured_size(tmp_path):
    g = Gallery.open(tmp_path / "g.db", MODEL)
    assert g.search == "auto" and g.search_used(AUTO_FAISS_MIN - 1) == "exact"
    try:
        import faiss  # noqa: F401 (imported only to skip without faiss)
    except ImportError:
        assert g.search_used(AUTO_FAISS_MIN) == "exact"
    else:
        assert g.search_used(AUTO_FAISS_MIN) == "faiss"
    with pytest.raises(BadInputError, match=r"search 'hnsw': expected one of 'auto', 'exact', 'faiss'"):
        Gallery.open(tmp_path / "g.db", MODEL, search="hnsw")


def test_faiss_index_is_persisted_beside_the_gallery_and_rebuilt_when_stale(tmp_path):
    pytest.importorskip("faiss", reason="faiss-cpu (extra 'faiss') is not installed")
    rng = np.random.default_rng(2)
    names, vectors = people_like_faces(rng, 800, 2)  # 1200: enough for the index to be written
    path = tmp_path / "g.db"
    g = Gallery.open(path, MODEL, search="faiss")
    g.add_many(names, vectors, [f"h{i}" for i in range(len(names))])
    queries = vectors[:200] + rng.normal(0, 0.01, (200, 128)).astype(np.float32)
    exact_g = Gallery.open(path, MODEL, search="exact")
    want = [r.matches[0] for r in exact_g.identify(queries, 0.6)]
    got = [r.matches[0] for r in g.identify(queries, 0.6)]
    assert np.mean([a.name == b.name for a, b in zip(got, want)]) >= 0.99
    same = [(a, b) for a, b in zip(got, want) if a.name == b.name]
    assert max(abs(a.distance - b.distance) for a, b in same) < 1e-9  # re-ranked exactly
    index_file = tmp_path / "g.db.faiss"
    header = json.loads(index_file.open("rb").readline())
    assert header["count"] == len(names)
    stamp = index_file.stat().st_mtime_ns
    reader = Gallery.open(path, MODEL, search="faiss")  # as a new process: reads the file, builds nothing
    reader.identify(queries[:3], 0.6)
    assert reader._faiss.saved == len(names) and index_file.stat().st_mtime_ns == stamp
    g.remove(names[0])  # stale: rebuilt and written again
    assert names[0] not in [m.name for r in reader.identify(queries[:1], 0.6, top_k=5) for m in r.matches]
    assert json.loads(index_file.open("rb").readline())["key"] != header["key"]


def export_json(gallery) -> dict:
    i = gallery.identity
    return {"model": i.model, "precision": i.precision, "model_sha256": i.sha256, "records": gallery.records()}


def test_import_npz_and_json(tmp_path):
    rng = np.random.default_rng(3)
    names, vectors = people_like_faces(rng, 300, 3)
    npz = tmp_path / "bulk.npz"
    np.savez(npz, names=np.array(names), vectors=vectors, model=MODEL.model, precision=MODEL.precision,
             model_sha256=MODEL.sha256)
    g = Gallery.open(tmp_path / "g.db", MODEL)
    assert import_file(g, npz) == (len(names), len(names))
    assert import_file(g, npz) == (0, len(names))  # again: nothing new
    assert sum(c for _, c in g.people()) == len(names) and len(g.people()) == 300
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(export_json(g)))
    copy = Gallery.open(tmp_path / "copy.db", MODEL)
    assert import_file(copy, exported) == (len(names), len(names))
    assert copy.people() == g.people()
    q = vectors[:20].astype(np.float64)
    assert [r.matches for r in copy.identify(q, 0.6)] == [r.matches for r in g.identify(q, 0.6)]


def test_import_refuses_another_model_and_bad_files(tmp_path):
    g = Gallery.open(tmp_path / "g.db", MODEL)
    other = tmp_path / "other.npz"
    np.savez(other, names=np.array(["a"]), vectors=np.zeros((1, 128), np.float32), model="face-embed",
             precision="int8", model_sha256="f" * 64)
    with pytest.raises(GalleryModelMismatchError, match=r"other\.npz: its embeddings come from face-embed int8 .*never mixed"):
        import_file(g, other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, names=np.array(["a"], dtype=object), vectors=np.zeros((1, 128), np.float32),
             model=MODEL.model, precision=MODEL.precision, model_sha256=MODEL.sha256)
    with pytest.raises(BadInputError, match=r"pickled\.npz: not a readable \.npz without pickle"):
        import_file(g, pickled)
    short = tmp_path / "short.npz"
    np.savez(short, names=np.array(["a", "b"]), vectors=np.zeros((2, 64), np.float32), model=MODEL.model,
             precision=MODEL.precision, model_sha256=MODEL.sha256)
    with pytest.raises(BadInputError, match=r"short\.npz: vectors of shape \(2, 64\) for 2 names: expected \(2, 128\)"):
        import_file(g, short)
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(BadInputError, match=r"x\.csv: expected a \.json \(gallery export\) or \.npz file"):
        import_file(g, tmp_path / "x.csv")
    assert g.people() == []


def test_identify_photo_reports_where_the_time_goes(engines_dir, tmp_path):
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.gallery import enroll_photos

    photos = require_shared(FACES)
    analyzer = FaceAnalyzer.from_engines(engines_dir)
    g = Gallery.open(tmp_path / "g.db", analyzer.embedder.identity)
    assert [o.status for o in enroll_photos(g, analyzer, "obama", [next(photos.rglob("obama.jpg"))])] == ["enrolled"]
    result = identify_photo(g, analyzer, str(next(photos.rglob("obama_and_biden.jpg"))))
    assert sorted(f.identity for f in result.faces) == ["obama", "unknown", "unknown"]
    assert list(result.timings) == ["decode", "detect", "landmarks", "align", "embed", "search"]
    assert all(v > 0 for v in result.timings.values())
    assert result.timings["detect"] > result.timings["search"]  # one person enrolled: search is nothing
    nobody = identify_photo(g, analyzer, np.zeros((64, 64, 3), np.uint8))
    assert nobody.faces == [] and nobody.timings["embed"] == 0.0 and nobody.timings["decode"] >= 0


def test_bulk_load_reads_contiguous_blobs(tmp_path):
    """2 x 10^4 embeddings: ready from the file in one bulk read, identical to what was stored."""
    rng = np.random.default_rng(4)
    vectors = rng.normal(0, 0.09, (20_000, 128)).astype(np.float32)
    names = [f"s{i:06d}" for i in range(len(vectors))]
    g = Gallery.open(tmp_path / "g.db", MODEL)
    g.add_many(names, vectors, names)
    fresh = Gallery.open(tmp_path / "g.db", MODEL).matrix()
    assert fresh.n == 20_000 and fresh.vectors.flags.c_contiguous and fresh.vectors.dtype == np.float32
    np.testing.assert_array_equal(fresh.vectors, vectors)
    np.testing.assert_allclose(fresh.norms, (vectors.astype(np.float64) ** 2).sum(1), rtol=1e-5)
    assert fresh.names[:3] == names[:3] and os.path.getsize(tmp_path / "g.db") > vectors.nbytes
    snapshot = tmp_path / "g.db.matrix.npz"  # written by that load: the next process maps it instead
    assert snapshot.exists() and len(list(tmp_path.glob("g.db.matrix.npz.*.vectors.npy"))) == 1
    g.add("late", vectors[0] + 1, "late")
    again = Gallery.open(tmp_path / "g.db", MODEL).matrix()
    assert isinstance(again.vectors, np.memmap) or again.n == 20_001
    assert again.n == 20_001 and again.names[-1] == "late"  # the snapshot, then the row added after it
    np.testing.assert_array_equal(again.vectors[:20_000], vectors)
    g.remove("late")  # a removal: the snapshot no longer matches, rows are read again
    assert Gallery.open(tmp_path / "g.db", MODEL).matrix().n == 20_000
