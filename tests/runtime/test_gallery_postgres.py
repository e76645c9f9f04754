"""The PostgreSQL gallery against a real server: a throwaway cluster on 127.0.0.1 (tests/pgcluster.py)."""

import hashlib
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

import pgcluster
from conftest import FACES, require_shared
from facestyle.errors import BadInputError, GalleryError, GalleryModelMismatchError
from facestyle.face.gallery import Gallery, ModelIdentity, import_file

MODEL = ModelIdentity("face-embed", "fp32", "a" * 64, dim=4)


@pytest.fixture(scope="module")
def cluster():
    yield from pgcluster.started("these tests")


@pytest.fixture
def url(cluster):
    return cluster.create_database(f"t{uuid.uuid4().hex[:12]}")


def unit(*values):
    return np.array(values, np.float32)


def test_same_api_as_sqlite(url):
    g = Gallery.open(url, MODEL)
    assert g.add("ann", unit(0, 0, 0, 0), "h1") and g.add("ann", unit(1, 0, 0, 0), "h2")
    assert g.add("bob", unit(0, 0.5, 0, 0), "h3", "bob.jpg", [1, 2, 3, 4])
    assert g.add("ann", unit(0, 0, 0, 0), "h1") is False  # the same photo again
    (result,) = g.identify(unit(0.9, 0, 0, 0), threshold=0.6, top_k=2)
    assert [(m.name, round(m.distance, 5)) for m in result.matches] == [("ann", 0.1), ("bob", round(np.hypot(0.9, 0.5), 5))]
    assert g.people() == [("ann", 2), ("bob", 1)]
    bob = [r for r in g.records() if r["name"] == "bob"]
    assert bob[0]["source_file"] == "bob.jpg" and bob[0]["box"] == [1, 2, 3, 4] and bob[0]["embedding"] == [0, 0.5, 0, 0]
    assert g.remove("bob") == 1 and g.people() == [("ann", 2)]
    with pytest.raises(BadInputError, match=r"nobody called 'zed' is enrolled"):
        g.remove("zed")
    assert Gallery.stored_identity(url) == MODEL
    g.close()


def test_model_identity_is_checked_and_missing_galleries_reported(url, cluster):
    Gallery.open(url, MODEL).close()
    other = ModelIdentity("face-embed", "int8", "b" * 64, dim=4)
    with pytest.raises(GalleryModelMismatchError, match=r"come from face-embed fp32 .* not face-embed int8 .*gallery reembed"):
        Gallery.open(url, other)
    empty = cluster.create_database("empty_" + uuid.uuid4().hex[:8])
    with pytest.raises(GalleryError, match=r"no such gallery; enrol someone to create it"):
        Gallery.open(empty, MODEL, create=False)
    with pytest.raises(GalleryError, match=r"127\.0\.0\.1:1/x: cannot reach the gallery database"):
        Gallery.open("postgresql://postgres@127.0.0.1:1/x", MODEL)


def test_a_path_made_of_the_url_still_names_the_server(url):
    from pathlib import Path

    Gallery.open(url, MODEL).add("ann", unit(1, 1, 1, 1), "h")
    assert Gallery.open(Path(url), MODEL, create=False).people() == [("ann", 1)]  # argparse type=Path folds '//'


ENROL = textwrap.dedent(
    """
    import sys, numpy as np
    from facestyle.face.gallery import Gallery, ModelIdentity
    g = Gallery.open(sys.argv[1], ModelIdentity("face-embed", "fp32", "a" * 64, dim=4))
    for i in range(int(sys.argv[3])):
        g.add(f"{sys.argv[2]}-{i}", np.full(4, i, np.float32), f"{sys.argv[2]}-{i}")
    """
)


def test_processes_enrolling_at_once_lose_nothing_and_readers_see_them(url):
    reader = Gallery.open(url, MODEL)
    assert reader.identify(unit(0, 0, 0, 0), 0.6)[0].identity == "unknown"  # its matrix: empty
    procs = [subprocess.Popen([sys.executable, "-c", ENROL, url, who, "40"]) for who in ("p", "q", "r")]
    assert [p.wait(timeout=180) for p in procs] == [0, 0, 0]
    people = reader.people()
    assert len(people) == 120 and all(count == 1 for _, count in people)
    matrix = reader.matrix()  # picked up before searching: the generation moved
    assert matrix.n == 120 and sorted(matrix.names) == sorted(n for n, _ in people)
    assert len(set(matrix.ids.tolist())) == 120 and np.all(np.diff(matrix.ids) > 0)
    hit = reader.identify(np.full(4, 39, np.float32), 0.6, top_k=3)[0]
    assert sorted(m.name for m in hit.matches) == ["p-39", "q-39", "r-39"] and hit.matches[0].distance == 0


def test_a_killed_writer_leaves_the_store_consistent(url):
    g = Gallery.open(url, MODEL)
    g.add("ann", unit(0, 0, 0, 0), "h1")
    script = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from facestyle.face.gallery import Gallery, ModelIdentity
        g = Gallery.open({url!r}, ModelIdentity("face-embed", "fp32", "a" * 64, dim=4))
        with g.store.transaction() as db:
            db.execute("INSERT INTO people (name, created) VALUES ('half', 0)")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert done.returncode == -9
    assert g.people() == [("ann", 1)]
    assert g.add("bob", unit(1, 1, 1, 1), "h2")  # the dead writer's lock went with its connection
    assert g.people() == [("ann", 1), ("bob", 1)]
    assert g.identify(unit(1, 1, 1, 1), 0.6)[0].identity == "bob"


def test_import_into_postgres(url, tmp_path):
    rng = np.random.default_rng(5)
    model = ModelIdentity("face-embed", "fp32", "c" * 64, dim=128)
    vectors = rng.normal(0, 0.09, (2000, 128)).astype(np.float32)
    names = [f"n{i % 700:04d}" for i in range(2000)]
    npz = tmp_path / "bulk.npz"
    np.savez(npz, names=np.array(names), vectors=vectors, model=model.model, precision=model.precision,
             model_sha256=model.sha256)
    g = Gallery.open(url, model)
    assert import_file(g, npz) == (2000, 2000) and import_file(g, npz) == (0, 2000)
    assert len(g.people()) == 700
    sqlite = Gallery.open(tmp_path / "same.db", model)
    import_file(sqlite, npz)
    q = vectors[::100].astype(np.float64) + 0.01
    assert [r.matches for r in g.identify(q, 0.6)] == [r.matches for r in sqlite.identify(q, 0.6)]


def test_reembed_a_postgres_gallery(url, engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.gallery import identify_photo, reembed

    source = str(next(require_shared(FACES).rglob("biden.jpg")))
    old = Gallery.open(url, ModelIdentity("face-embed", "fp16", "c" * 64))
    old.add("biden", np.zeros(128, np.float32), hashlib.sha256(open(source, "rb").read()).hexdigest(), source)
    old.close()
    analyzer = FaceAnalyzer.from_engines(engines_dir)
    assert reembed(url, analyzer) == 1
    g = Gallery.open(url, analyzer.embedder.identity, create=False)
    (face,) = identify_photo(g, analyzer, source).faces
    assert face.identity == "biden" and face.matches[0].distance < 1e-5


def test_the_already_enrolled_check_is_made_under_the_write_lock(url):
    import psycopg
    from test_gallery_concurrency import race_behind_lock

    gallery = Gallery.open(url, MODEL)
    gallery.add("ann", unit(0, 0, 0, 0), "h1")
    blocker = psycopg.connect(url, autocommit=True)

    def hold():  # the row every writer locks first
        blocker.execute("BEGIN")
        blocker.execute("UPDATE facestyle.meta SET value = value WHERE key = 'generation'")

    outcomes, sha = race_behind_lock(gallery, hold, lambda: blocker.execute("ROLLBACK"), [f"n{i}" for i in range(6)])
    blocker.close()
    assert sorted(outcomes.values()) == ["another person"] * 5 + ["enrolled"]
    (owner,) = gallery.store.owners([sha])[sha]
    assert outcomes[owner] == "enrolled" and dict(gallery.people()) == {"ann": 1, owner: 1}
    gallery.close()


def test_import_checks_every_entry_before_writing(url, tmp_path):
    g = Gallery.open(url, MODEL)
    g.add("ann", unit(0, 0, 0, 0), "h1")
    npz = tmp_path / "bad.npz"
    np.savez(npz, names=np.array(["ok", "UNKNOWN"]), vectors=np.zeros((2, 4), np.float32), model=MODEL.model,
             precision=MODEL.precision, model_sha256=MODEL.sha256)
    with pytest.raises(BadInputError, match=r"bad\.npz: names\[1\] 'UNKNOWN': 'unknown' is reserved"):
        import_file(g, npz)
    assert g.people() == [("ann", 1)]
    g.close()
