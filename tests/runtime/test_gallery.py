import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from conftest import FACES, require_shared
from facestyle.cli import main
from facestyle.errors import BadInputError
from facestyle.face.gallery import Gallery, GalleryError, GalleryModelMismatchError, ModelIdentity

MODEL = ModelIdentity("face-embed", "fp32", "a" * 64, dim=4)


def unit(*values):
    return np.array(values, np.float32)


@pytest.fixture
def gallery(tmp_path):
    g = Gallery.open(tmp_path / "g.db", MODEL)
    g.add("ann", unit(0, 0, 0, 0), "h1")
    g.add("ann", unit(1, 0, 0, 0), "h2")
    g.add("bob", unit(0, 0.5, 0, 0), "h3")
    return g


def test_identify_uses_each_persons_closest_photo(gallery):
    (result,) = gallery.identify(unit(0.9, 0, 0, 0), threshold=0.6, top_k=2)
    assert [(m.name, round(m.distance, 5)) for m in result.matches] == [("ann", 0.1), ("bob", round(np.hypot(0.9, 0.5), 5))]
    assert result.identity == "ann"


def test_beyond_the_threshold_is_unknown(gallery):
    far, near_bob = gallery.identify(np.stack([unit(0, 0, 3, 0), unit(0, 0.6, 0, 0)]), threshold=0.6, top_k=1)
    assert far.identity == "unknown" and far.matches[0].name == "ann" and far.matches[0].distance == pytest.approx(3.0)
    assert near_bob.identity == "bob" and near_bob.matches[0].distance == pytest.approx(0.1, abs=1e-6)


def test_duplicates_remove_and_bad_input(gallery):
    assert gallery.add("ann", unit(0, 0, 0, 0), "h1") is False  # same photo again
    assert gallery.people() == [("ann", 2), ("bob", 1)]
    assert gallery.remove("bob") == 1 and gallery.people() == [("ann", 2)]
    with pytest.raises(BadInputError, match=r"nobody called 'zed' is enrolled"):
        gallery.remove("zed")
    with pytest.raises(BadInputError, match=r"embedding for 'cy': expected 4 finite floats, got shape \(3,\)"):
        gallery.add("cy", unit(1, 2, 3), "h9")
    with pytest.raises(BadInputError, match=r"expected a non-empty name other than 'unknown'"):
        gallery.add("unknown", unit(0, 0, 0, 0), "h8")


def test_another_model_is_refused(gallery):
    other = ModelIdentity("face-embed", "int8", "b" * 64, dim=4)
    with pytest.raises(GalleryModelMismatchError,
                       match=r"come from face-embed fp32 .* not face-embed int8 .*facestyle gallery reembed"):
        Gallery.open(gallery.path, other)


def test_corrupted_and_foreign_files_are_refused(tmp_path, gallery):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match=r"junk\.db: not a facestyle gallery, or corrupted"):
        Gallery.open(junk, MODEL)
    gallery.close()
    raw = bytearray(gallery.path.read_bytes())
    raw[100:4096] = os.urandom(3996)  # the first page's b-tree
    broken = tmp_path / "broken.db"
    broken.write_bytes(bytes(raw))
    with pytest.raises(GalleryError, match=r"broken\.db: (not a facestyle gallery, or corrupted|integrity check failed)"):
        Gallery.open(broken, MODEL)
    with pytest.raises(GalleryError, match=r"no such gallery"):
        Gallery.open(tmp_path / "none.db", MODEL, create=False)


ENROL_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from facestyle.face.gallery import Gallery, ModelIdentity
    g = Gallery.open(sys.argv[1], ModelIdentity("face-embed", "fp32", "a" * 64, dim=4))
    for i in range(int(sys.argv[3])):
        g.add(f"{sys.argv[2]}-{i}", np.full(4, i, np.float32), f"{sys.argv[2]}-{i}")
    """
)


def test_two_processes_enrolling_at_once_lose_nothing(tmp_path):
    path = tmp_path / "shared.db"
    Gallery.open(path, MODEL).close()
    procs = [subprocess.Popen([sys.executable, "-c", ENROL_SCRIPT, str(path), who, "60"]) for who in ("p", "q")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    people = Gallery.open(path, MODEL).people()
    assert len(people) == 120 and all(count == 1 for _, count in people)


def test_a_process_killed_mid_enrolment_leaves_the_gallery_consistent(tmp_path, gallery):
    script = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from facestyle.face.gallery import Gallery, ModelIdentity
        g = Gallery.open({str(gallery.path)!r}, ModelIdentity("face-embed", "fp32", "a" * 64, dim=4))
        with g.store.transaction() as db:
            db.execute("INSERT INTO people (name, created) VALUES ('half', 0)")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert done.returncode == -9
    reopened = Gallery.open(gallery.path, MODEL)
    assert reopened.people() == [("ann", 2), ("bob", 1)]
    with sqlite3.connect(gallery.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_threads_share_a_gallery(gallery):
    errors = []

    def work(k):
        try:
            for i in range(20):
                gallery.add(f"t{k}", np.full(4, i + 10 * k, np.float32), f"t{k}-{i}")
                assert gallery.identify(unit(0, 0, 0, 0), 0.6)[0].identity == "ann"
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert dict(gallery.people()) == {"ann": 2, "bob": 1, "t0": 20, "t1": 20, "t2": 20, "t3": 20}


def photo(name):
    return str(next(require_shared(FACES).rglob(name)))


def test_one_shot_enrolment_and_identification_on_real_photos(engines_dir, tmp_path, capsys):
    g = str(tmp_path / "people.db")
    common = ["--engines", str(engines_dir)]
    assert main(["enroll", "--gallery", g, "obama", photo("obama.jpg"), photo("two_people.jpg"), *common]) == 2
    out = capsys.readouterr()  # all or nothing: the group photo is refused, so obama.jpg is not enrolled either
    assert "two_people.jpg: several faces (2 found" in out.err and "nothing enrolled" in out.err and not out.out
    assert main(["gallery", "list", "--gallery", g]) == 0  # created, and never deleted again: others may be writing
    assert capsys.readouterr().out == "(empty)\n"
    assert main(["enroll", "--skip-bad", "--gallery", g, "obama", photo("obama.jpg"), photo("two_people.jpg"), *common]) == 2
    out = capsys.readouterr()
    assert "obama.jpg: enrolled (obama)" in out.out and "1 photo(s) of 1 person enrolled; 1 refused and skipped" in out.err
    assert main(["enroll", "--gallery", g, "biden", photo("biden.jpg"), *common]) == 0
    assert main(["enroll", "--gallery", g, "biden", photo("biden.jpg"), *common]) == 0
    assert "biden.jpg: duplicate (biden)" in capsys.readouterr().out
    assert main(["identify", "--gallery", g, photo("obama_and_biden.jpg"), photo("kit_with_rose.jpg"), "--json", *common]) == 0
    group, strangers = json.loads(capsys.readouterr().out)
    assert sorted(f["identity"] for f in group["faces"]) == ["biden", "obama", "unknown"]
    assert [f["identity"] for f in strangers["faces"]] == ["unknown", "unknown"]
    assert all(len(f["matches"]) == 2 for f in group["faces"])  # top-k 3, only 2 people enrolled
    assert group["threshold"] == 0.6 and "manifest" in group["threshold_source"]
    assert main(["gallery", "list", "--gallery", g, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "biden", "photos": 1}, {"name": "obama", "photos": 1}]


def test_reembed_rebuilds_a_gallery_of_another_model(engines_dir, tmp_path, capsys):
    path = tmp_path / "old.db"
    old = Gallery.open(path, ModelIdentity("face-embed", "fp16", "c" * 64))
    import hashlib

    source = photo("biden.jpg")
    old.add("biden", np.zeros(128, np.float32), hashlib.sha256(open(source, "rb").read()).hexdigest(), source)
    old.close()
    common = ["--engines", str(engines_dir)]
    assert main(["identify", "--gallery", str(path), source, *common]) == 2
    assert "facestyle gallery reembed" in capsys.readouterr().err
    assert main(["gallery", "reembed", "--gallery", str(path), *common]) == 0  # no chip stored: from the source photo
    assert "1 embedding(s) re-made with face-embed fp32" in capsys.readouterr().out
    assert main(["identify", "--gallery", str(path), source, "--json", *common]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["faces"][0]["identity"] == "biden" and result["faces"][0]["matches"][0]["distance"] < 1e-5
    assert (tmp_path / "old.db.bak").exists()


def test_faiss_search_gives_the_exact_searchs_top1(tmp_path):
    pytest.importorskip("faiss", reason="faiss-cpu (extra 'faiss') is not installed")
    rng = np.random.default_rng(3)
    model = ModelIdentity("face-embed", "fp32", "f" * 64, dim=128)
    exact = Gallery.open(tmp_path / "g.db", model)
    centres = rng.normal(0, 0.1, (300, 128)).astype(np.float32)
    for i, c in enumerate(centres):
        for j in range(1 + i % 3):  # one to three photos per person
            exact.add(f"p{i:03d}", c + rng.normal(0, 0.03, 128).astype(np.float32), f"{i}-{j}")
    fast = Gallery.open(tmp_path / "g.db", model, search="faiss")
    queries = centres[:100] + rng.normal(0, 0.03, (100, 128)).astype(np.float32)
    a, b = exact.identify(queries, 0.6, top_k=3), fast.identify(queries, 0.6, top_k=3)
    assert [r.identity for r in a] == [r.identity for r in b] == [f"p{i:03d}" for i in range(100)]
    assert [r.matches[0].name for r in a] == [r.matches[0].name for r in b]
    np.testing.assert_allclose([r.matches[0].distance for r in a], [r.matches[0].distance for r in b], atol=1e-4)
    fast.add("late", centres[0] * 0 + 5, "late")  # the index follows enrolments
    assert fast.identify(np.full(128, 5, np.float32), 0.6)[0].identity == "late"


def test_reembed_keeps_a_name_enrolled_before_the_name_rule(engines_dir, tmp_path):
    import hashlib

    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.gallery import reembed

    path, source = tmp_path / "old.db", photo("biden.jpg")
    old = Gallery.open(path, ModelIdentity("face-embed", "fp16", "c" * 64))
    old.add("biden", np.zeros(128, np.float32), hashlib.sha256(open(source, "rb").read()).hexdigest(), source)
    old.close()
    with sqlite3.connect(path) as db:  # '/' and 'Unknown' are refused now, and were not always
        db.execute("UPDATE people SET name = 'Unknown/AC' WHERE name = 'biden'")
    assert reembed(path, FaceAnalyzer.from_engines(engines_dir)) == 1
    assert Gallery.open(path, Gallery.stored_identity(path), create=False, write=False).people() == [("Unknown/AC", 1)]
