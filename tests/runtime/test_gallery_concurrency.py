"""Concurrent enrolments: a gallery is created once and never undone, and one photo never ends up under two names.

Real `facestyle enroll` processes race on one gallery; the in-process tests hold the store's write lock
while enrolments queue behind it, so the order the check and the write happen in is what decides.
"""

import hashlib
import sqlite3
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import FACES, require_shared
from facestyle.face.gallery import Gallery, ModelIdentity, enroll_faces

MODEL = ModelIdentity("face-embed", "fp32", "a" * 64, dim=4)
EXAMPLES = "face_recognition_examples/examples"
ONE_FACE = [f"{EXAMPLES}/obama.jpg", f"{EXAMPLES}/biden.jpg", f"{EXAMPLES}/knn_examples/train/rose_leslie/img1.jpg",
            f"{EXAMPLES}/knn_examples/train/alex_lacamoire/img1.jpg", f"{EXAMPLES}/knn_examples/test/johnsnow_test1.jpg"]
TRIALS = 2
WAIT_S = 300  # a bound on each process, not a measurement: six model loads share the CPU


def faces_photo(relative: str) -> str:
    return str(require_shared(FACES) / relative)


def no_face_photo() -> str:
    from facestyle.export.sample_inputs import skimage_data_dir

    return str(skimage_data_dir() / "coffee.png")


def enroll(gallery, name, photo, engines_dir) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facestyle.cli", "enroll", "--gallery", str(gallery), name, photo,
                             "--engines", str(engines_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs) -> list[tuple[int, str]]:
    return [(p.returncode, out + err) for p in procs for out, err in [p.communicate(timeout=WAIT_S)]]


def stored_people(path) -> dict[str, int]:
    stored = Gallery.open(path, Gallery.stored_identity(path), create=False, write=False)
    try:
        return dict(stored.people())
    finally:
        stored.close()


def test_racing_first_enrolments_into_a_new_gallery_keep_every_committed_photo(engines_dir, tmp_path):
    photos = [faces_photo(p) for p in ONE_FACE]
    for trial in range(TRIALS):
        path = tmp_path / f"new{trial}.db"
        procs = [enroll(path, f"p{i}", photo, engines_dir) for i, photo in enumerate(photos)]
        procs.append(enroll(path, "cup", no_face_photo(), engines_dir))  # refused: nothing to enrol
        results = finish(procs)
        assert results[-1][0] == 2 and "no face" in results[-1][1]
        assert [code for code, _ in results[:-1]] == [0] * len(photos), results
        assert stored_people(path) == {f"p{i}": 1 for i in range(len(photos))}


def test_racing_enrolments_of_one_photo_under_several_names_store_it_once(engines_dir, tmp_path):
    photo = faces_photo(ONE_FACE[0])
    path = tmp_path / "g.db"
    assert finish([enroll(path, "first", faces_photo(ONE_FACE[1]), engines_dir)])[0][0] == 0
    results = finish([enroll(path, f"name{i}", photo, engines_dir) for i in range(6)])
    winners = [i for i, (code, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    losers = [text for code, text in results if code != 0]
    assert all(f"already enrolled as name{winners[0]}" in text for text in losers), losers
    assert stored_people(path) == {"first": 1, f"name{winners[0]}": 1}


# -- in process: enrolments queued behind a held write lock -----------------------------------------------
def fake_face(value: float):
    """An analysed face as the analyzer returns it (what enroll_faces takes), without running a model; its blank
    chip scores as a poor face, so the enrolments here pass ``allow_poor`` (what is tested is the write lock)."""
    landmarks = np.array([[25, 10], [20, 10], [5, 10], [10, 10], [15, 25]], np.float64)
    return SimpleNamespace(box=(1, 2, 30, 40), score=1.0, landmarks=landmarks, embedding=np.full(4, value, np.float32),
                           chip=np.zeros((8, 8, 3), np.uint8))


def waiting_in_transaction(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "transaction":
            return True
        frame = frame.f_back
    return False


def race_behind_lock(gallery, hold_lock, release_lock, names, photo=b"one photo's bytes"):
    """Enrol ``photo`` under each of ``names`` from its own thread, all queued behind a held write lock."""
    outcomes, errors = {}, []

    def work(name):
        try:
            outcomes[name] = enroll_faces(gallery, [(name, "same.jpg", photo, [fake_face(1.0)])], allow_poor=True)[0].status
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    hold_lock()
    threads = [threading.Thread(target=work, args=(name,)) for name in names]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while not all(waiting_in_transaction(t) or not t.is_alive() for t in threads):
            assert time.monotonic() < deadline, "the enrolments never reached the write lock"
            time.sleep(0.01)
    finally:
        release_lock()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    return outcomes, hashlib.sha256(photo).hexdigest()


def test_the_already_enrolled_check_is_made_under_the_write_lock_sqlite(tmp_path):
    gallery = Gallery.open(tmp_path / "g.db", MODEL)
    gallery.add("ann", np.zeros(4, np.float32), "h1")
    blocker = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    names = [f"n{i}" for i in range(6)]
    outcomes, sha = race_behind_lock(gallery, lambda: blocker.execute("BEGIN IMMEDIATE"),
                                     lambda: blocker.execute("ROLLBACK"), names)
    assert sorted(outcomes.values()) == ["another person"] * 5 + ["enrolled"]
    (owner,) = gallery.store.owners([sha])[sha]
    assert outcomes[owner] == "enrolled" and dict(gallery.people()) == {"ann": 1, owner: 1}


def test_a_database_another_process_is_still_creating_is_taken_as_new(tmp_path):
    path = tmp_path / "g.db"
    with sqlite3.connect(path) as db:  # what a creating process has done before its tables commit
        db.execute("PRAGMA journal_mode = WAL")
    assert path.stat().st_size > 0
    gallery = Gallery.open(path, MODEL)
    assert gallery.add("ann", np.zeros(4, np.float32), "h1") and gallery.people() == [("ann", 1)]
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(Exception, match=r"other\.db: not a facestyle gallery"):
        Gallery.open(other, MODEL)
