"""The gallery as a user meets it from the CLI: enrolment all or nothing (or --skip-bad), --folder, a photo under
two names, foreign files left alone, read-only commands that touch nothing, stored chips that make reembed
independent of the photos, and export/import round trips."""

import hashlib
import json
import shutil
import sqlite3
from contextlib import contextmanager

import numpy as np
import pytest

from conftest import FACES, require_shared
from facestyle.cli import main
from facestyle.face.gallery import Gallery


@contextmanager
def sql(path):
    """A plain SQLite connection, committed and closed (so its WAL is folded back) at the end of the block."""
    db = sqlite3.connect(path)
    try:
        yield db
        db.commit()
    finally:
        db.close()


def photo(name):
    return next(require_shared(FACES).rglob(name))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def common(engines_dir):
    return ["--engines", str(engines_dir)]


@pytest.fixture
def people(tmp_path):
    """PEOPLE/<name>/<photos>: two people, copies of the shared photos (so tests may move them)."""
    root = tmp_path / "people"
    for name, files in {"obama": ["obama.jpg", "obama2.jpg"], "biden": ["biden.jpg"]}.items():
        (root / name).mkdir(parents=True)
        for f in files:
            shutil.copy(photo(f), root / name / f)
    return root


def stored(gallery_path):
    with sql(gallery_path) as db:
        return db.execute("SELECT p.name, e.source_file, e.chip, e.vector FROM embeddings e JOIN people p "
                          "ON p.id = e.person_id ORDER BY p.name, e.source_file").fetchall()


def test_folder_enrols_everyone_in_one_go_with_progress_and_a_summary(people, tmp_path, common, capsys, monkeypatch):
    monkeypatch.setenv("FACESTYLE_PROGRESS", "1")  # stderr is not a terminal here
    g = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(g), "--folder", str(people), *common]) == 0
    out = capsys.readouterr()
    assert "enrolling [" in out.err and "3/3" in out.err
    assert f"{g}: 3 photo(s) of 2 people enrolled" in out.out
    rows = stored(g)
    assert [(n, f.rsplit("/", 1)[-1]) for n, f, _, _ in rows] == [("biden", "biden.jpg"), ("obama", "obama.jpg"),
                                                                   ("obama", "obama2.jpg")]
    assert all(chip[:8] == b"\x89PNG\r\n\x1a\n" for _, _, chip, _ in rows)  # the aligned chip of every face


def test_one_bad_photo_in_a_folder_enrols_nobody_unless_skip_bad(people, tmp_path, common, capsys):
    shutil.copy(photo("two_people.jpg"), people / "biden" / "group.jpg")
    (people / "biden" / "notes.png").write_text("not an image")
    g = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(g), "--folder", str(people), "--json", *common]) == 2
    out = capsys.readouterr()
    entries = json.loads(out.out)
    assert [e["status"] for e in entries] == ["enrolled", "several faces", "unreadable", "enrolled", "enrolled"]
    assert "group.jpg: several faces (2 found" in entries[1]["error"]
    assert entries[2]["error"] == (f"{people / 'biden' / 'notes.png'}: "
                                   "not a readable image (the file holds text, not PNG, JPEG, ...)")
    assert "nothing enrolled; 2 of 5 photo(s) refused" in out.err
    # Another process may be enrolling into the same new file: a failed enrolment never deletes it.
    assert main(["gallery", "list", "--gallery", str(g)]) == 0 and "(empty)" in capsys.readouterr().out
    assert main(["enroll", "--gallery", str(g), "--folder", str(people), "--skip-bad", *common]) == 2
    assert "3 photo(s) of 2 people enrolled; 2 refused and skipped" in capsys.readouterr().err
    assert len(stored(g)) == 3


def test_enrol_json_puts_only_the_json_on_stdout(tmp_path, common, capsys):
    g = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(g), "obama", str(photo("obama.jpg")), "--json", *common]) == 0
    out = capsys.readouterr()
    assert [e["status"] for e in json.loads(out.out)] == ["enrolled"]  # the whole of stdout is one JSON document
    assert "1 photo(s) of 1 person enrolled" in out.err


def test_all_or_nothing_into_an_existing_gallery_leaves_it_unchanged(tmp_path, common, capsys):
    g = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(g), "obama", str(photo("obama.jpg")), *common]) == 0
    before = digest(g)
    assert main(["enroll", "--gallery", str(g), "biden", str(photo("biden.jpg")), str(tmp_path / "missing.jpg"), *common]) == 2
    err = capsys.readouterr().err
    assert "missing.jpg: unreadable (No such file or directory)" in err and "nothing enrolled" in err
    assert digest(g) == before and [n for n, *_ in stored(g)] == ["obama"]


def test_loose_photos_in_folder_are_refused_before_any_work(people, tmp_path, common, capsys):
    shutil.copy(photo("biden.jpg"), people / "loose.jpg")
    assert main(["enroll", "--gallery", str(tmp_path / "g.db"), "--folder", str(people), *common]) == 2
    assert "loose.jpg is not in a person's folder" in capsys.readouterr().err
    assert not (tmp_path / "g.db").exists()


def test_a_photo_already_enrolled_under_another_name_is_refused_naming_them(tmp_path, common, capsys):
    g = str(tmp_path / "g.db")
    assert main(["enroll", "--gallery", g, "obama", str(photo("obama.jpg")), *common]) == 0
    assert main(["enroll", "--gallery", g, "barack", str(photo("obama.jpg")), *common]) == 2
    err = capsys.readouterr().err
    assert "obama.jpg: another person (this photo is already enrolled as obama; pass --allow-duplicate" in err
    assert main(["enroll", "--gallery", g, "barack", str(photo("obama.jpg")), "--allow-duplicate", *common]) == 0
    capsys.readouterr()
    assert main(["gallery", "list", "--gallery", g, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[-2:] == [{"name": "barack", "photos": 1}, {"name": "obama", "photos": 1}]


def test_a_sqlite_file_of_another_program_is_refused_and_left_unchanged(tmp_path, common, capsys):
    other = tmp_path / "app.db"
    with sql(other) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
        db.execute("INSERT INTO orders (item) VALUES ('tea')")
    text = tmp_path / "notes.db"
    text.write_text("shopping list\n")
    for target in (other, text):
        before, files = digest(target), listing(tmp_path)
        for command in (["enroll", "--gallery", str(target), "obama", str(photo("obama.jpg"))],
                        ["identify", "--gallery", str(target), str(photo("obama.jpg"))],
                        ["gallery", "list", "--gallery", str(target)]):
            assert main([*command, *common]) == 2
            assert f"{target}: not a facestyle gallery" in capsys.readouterr().err
        assert digest(target) == before and listing(tmp_path) == files


def test_read_only_commands_create_and_change_nothing(tmp_path, common, capsys):
    missing = tmp_path / "nobody.db"
    for command in (["gallery", "list"], ["gallery", "export"], ["identify", str(photo("obama.jpg")), *common]):
        assert main([command[0], "--gallery", str(missing), *command[1:]]) == 2
        assert f"{missing}: no such gallery; enrol someone to create it" in capsys.readouterr().err
    assert listing(tmp_path) == []
    g = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(g), "obama", str(photo("obama.jpg")), *common]) == 0
    before, files = digest(g), listing(tmp_path)
    assert main(["identify", "--gallery", str(g), str(photo("obama2.jpg")), *common]) == 0
    assert main(["gallery", "list", "--gallery", str(g)]) == 0
    assert main(["gallery", "export", "--gallery", str(g)]) == 0
    assert digest(g) == before and listing(tmp_path) == files


def test_gallery_location_messages(tmp_path, common, capsys):
    assert main(["gallery", "list", "--gallery", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder; expected a gallery file" in capsys.readouterr().err
    assert main(["enroll", "--gallery", str(tmp_path), "obama", str(photo("obama.jpg")), *common]) == 2
    assert f"{tmp_path}: is a folder; expected a gallery file" in capsys.readouterr().err
    nowhere = tmp_path / "no" / "such" / "g.db"
    assert main(["enroll", "--gallery", str(nowhere), "obama", str(photo("obama.jpg")), *common]) == 2
    assert f"{nowhere}: cannot create the gallery there (folder {nowhere.parent} does not exist)" in capsys.readouterr().err


def _pretend_another_model(g):
    """Mark the gallery's embeddings as made by another model and scramble them, as a model upgrade would find it."""
    with sql(g) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'model_sha256'", ("c" * 64,))
        db.execute("UPDATE embeddings SET vector = ?", (np.zeros(128, np.float32).tobytes(),))


def test_reembed_uses_the_stored_chips_when_the_photos_are_gone(people, tmp_path, common, capsys):
    g = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(g), "--folder", str(people), *common]) == 0
    original = {(n, f): np.frombuffer(v, np.float32) for n, f, _, v in stored(g)}
    shutil.rmtree(people)  # the photos are gone
    _pretend_another_model(g)
    assert main(["identify", "--gallery", str(g), str(photo("obama.jpg")), *common]) == 2
    capsys.readouterr()
    assert main(["gallery", "reembed", "--gallery", str(g), *common]) == 0
    assert "3 embedding(s) re-made" in capsys.readouterr().out
    remade = {(n, f): np.frombuffer(v, np.float32) for n, f, _, v in stored(g)}
    assert remade.keys() == original.keys()  # nobody dropped
    worst = max(float(np.abs(remade[k] - original[k]).max()) for k in original)
    assert worst < 1e-5, worst  # the chip is stored losslessly: the same model gives the same embedding


def test_reembed_changes_nothing_when_one_embedding_cannot_be_remade(tmp_path, common, capsys):
    g = tmp_path / "g.db"
    moved = tmp_path / "biden.jpg"
    shutil.copy(photo("biden.jpg"), moved)
    assert main(["enroll", "--gallery", str(g), "obama", str(photo("obama.jpg")), *common]) == 0
    assert main(["enroll", "--gallery", str(g), "biden", str(moved), *common]) == 0
    with sql(g) as db:  # as enrolled before chips were stored
        db.execute("UPDATE embeddings SET chip = NULL WHERE source_file = ?", (str(moved),))
    moved.unlink()
    _pretend_another_model(g)
    before, files = digest(g), listing(tmp_path)
    assert main(["gallery", "reembed", "--gallery", str(g), *common]) == 2
    err = capsys.readouterr().err
    assert f"biden: source photo {moved} is gone and no face chip is stored" in err
    assert "nothing changed; 1 of 2 embedding(s) cannot be re-made" in err
    assert digest(g) == before and listing(tmp_path) == files


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE embeddings (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL, source_sha256 TEXT NOT NULL, source_file TEXT, box TEXT, created REAL NOT NULL,
    UNIQUE (person_id, source_sha256));
"""


def test_a_schema_1_gallery_is_read_as_is_and_upgraded_by_the_first_write(tmp_path, engines_dir, common, capsys):
    from facestyle.face.embedder import FaceEmbedder

    identity = FaceEmbedder.from_engines(engines_dir).identity
    g = tmp_path / "old.db"
    with sql(g) as db:
        db.execute("PRAGMA journal_mode = WAL")  # as facestyle made them
        db.executescript(SCHEMA_1)
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", "1"), ("model", identity.model),
                       ("precision", identity.precision), ("model_sha256", identity.sha256), ("dim", "128"),
                       ("generation", "0"), ("created", "0")])
        db.execute("INSERT INTO people VALUES (1, 'ada', 0)")
        db.execute("INSERT INTO embeddings VALUES (1, 1, ?, 'x', NULL, NULL, 0)", (np.ones(128, np.float32).tobytes(),))
    before = digest(g)
    assert main(["gallery", "list", "--gallery", str(g), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "ada", "photos": 1}] and digest(g) == before
    assert main(["enroll", "--gallery", str(g), "obama", str(photo("obama.jpg")), *common]) == 0
    with sql(g) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    assert [(n, c is not None) for n, _, c, _ in stored(g)] == [("ada", False), ("obama", True)]


def test_export_then_import_round_trips_embeddings_and_chips(people, tmp_path, common, capsys):
    g, copy = tmp_path / "g.db", tmp_path / "copy.db"
    assert main(["enroll", "--gallery", str(g), "--folder", str(people), *common]) == 0
    capsys.readouterr()
    assert main(["gallery", "export", "--gallery", str(g)]) == 0
    exported = tmp_path / "g.json"
    exported.write_text(capsys.readouterr().out)
    assert main(["gallery", "import", str(exported), "--gallery", str(copy), *common]) == 0
    assert "3 of 3 embedding(s) imported" in capsys.readouterr().out
    assert stored(copy) == stored(g)
    assert main(["gallery", "import", str(exported), "--gallery", str(copy), *common]) == 0
    assert "0 of 3 embedding(s) imported" in capsys.readouterr().out  # nothing twice
    shutil.rmtree(people)
    assert main(["gallery", "reembed", "--gallery", str(copy), *common]) == 0  # the chips came along


def test_gallery_api_keeps_one_outcome_per_photo(engines_dir, tmp_path):
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.gallery import enroll_photos

    analyzer = FaceAnalyzer.from_engines(engines_dir)
    gallery = Gallery.open(tmp_path / "g.db", analyzer.embedder.identity)
    files = [photo("obama.jpg"), photo("two_people.jpg"), photo("obama.jpg")]
    result = enroll_photos(gallery, analyzer, "obama", files, skip_bad=True)
    assert [o.status for o in result] == ["enrolled", "several faces", "duplicate"] and result.committed
    assert [o.faces for o in result] == [1, 2, 1] and result.refused == [result[1]]
    assert gallery.people() == [("obama", 1)]


def test_export_to_a_file_and_import_it_with_the_options_after_the_action(people, tmp_path, common, capsys):
    g, copy, exported = tmp_path / "g.db", tmp_path / "copy.db", tmp_path / "exp.json"
    assert main(["enroll", "--gallery", str(g), "--folder", str(people), *common]) == 0
    capsys.readouterr()
    assert main(["gallery", "export", str(exported), "--gallery", str(g)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and f"3 embedding(s) exported to {exported}" in captured.err
    assert len(json.loads(exported.read_text())["records"]) == 3
    assert listing(tmp_path) == ["exp.json", "g.db", "people"]  # no temporary file left beside it
    assert main(["gallery", "import", "--gallery", str(copy), str(exported), *common]) == 0
    assert stored(copy) == stored(g)
    assert main(["gallery", "remove", "--gallery", str(copy), "obama"]) == 0
    assert "removed obama (2 embedding(s))" in capsys.readouterr().out


def test_export_to_a_closed_stdout_fails(tmp_path, common):
    import os
    import subprocess
    import sys

    g = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(g), "obama", str(photo("obama.jpg")), *common]) == 0
    closed = subprocess.run([sys.executable, "-m", "facestyle.cli", "gallery", "export", "--gallery", str(g)],
                            capture_output=True, text=True, preexec_fn=lambda: os.close(1))
    assert closed.returncode == 2 and "standard output: closed" in closed.stderr


def test_importing_a_missing_file_says_so_and_creates_nothing(tmp_path, common, capsys):
    missing, g = tmp_path / "missing.json", tmp_path / "g.db"
    assert main(["gallery", "import", str(missing), "--gallery", str(g), *common]) == 2
    assert capsys.readouterr().err == (f"facestyle gallery: error: {missing}: no such file "
                                       "(expected the .json from `gallery export`, or a .npz)\n")
    assert listing(tmp_path) == []


def test_enrolling_a_text_file_names_it_and_says_it_is_not_an_image(tmp_path, common, capsys):
    notes = tmp_path / "notes.jpg"
    notes.write_text("a shopping list, not a photo")
    assert main(["enroll", "--gallery", str(tmp_path / "g.db"), "ada", str(notes), *common]) == 2
    err = capsys.readouterr().err
    assert f"facestyle enroll: error: {notes}: not a readable image (the file holds text" in err
    assert "<bytes>" not in err and "unreadable (" not in err
