"""`gallery import` checks every entry, field by field, before it writes anything; one schema for names."""

import base64
import io
import json
import os
import sqlite3

import numpy as np
import pytest
from PIL import Image

from facestyle.cli import main
from facestyle.errors import BadInputError, GalleryError
from facestyle.face.gallery import Gallery, ModelIdentity, import_file
from facestyle.face.gallery.names import MAX_NAME_LENGTH, check_name

MODEL = ModelIdentity("face-embed", "fp32", "a" * 64, dim=4)


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, format="PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def good_record(**changes) -> dict:
    record = {"name": "cy", "source_sha256": "c" * 64, "source_file": "cy.jpg", "box": [1, 2, 30, 40],
              "created": 1.7e9, "embedding": [0.1, 0.2, 0.3, 0.4], "chip_png": b64(png(150, 150))}
    record.update(changes)
    return record


@pytest.fixture
def gallery(tmp_path):
    g = Gallery.open(tmp_path / "g.db", MODEL)
    g.add("ann", np.zeros(4, np.float32), "h1")
    yield g
    g.close()


def export_with(tmp_path, bad: dict, text: str | None = None):
    """An export whose second entry is ``bad``: the first, good one must not be written either."""
    doc = {"model": MODEL.model, "precision": MODEL.precision, "model_sha256": MODEL.sha256,
           "records": [good_record(name="dee", source_sha256="d" * 64), bad]}
    path = tmp_path / "export.json"
    path.write_text(text if text is not None else json.dumps(doc))
    return path


def state(gallery) -> tuple:
    return gallery.people(), gallery.store.state()


BOMB = png(20_000, 20_000, "1")  # 400 million pixels in a few tens of kilobytes


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("created", [1, 2], r"records\[1\]\.created: expected null or seconds since 1970 .*got a list"),
        ("created", -5, r"records\[1\]\.created: expected null or seconds since 1970 .*got -5"),
        ("source_sha256", ["a"], r"records\[1\]\.source_sha256: expected printable text .*got a list"),
        ("source_file", {"a": 1}, r"records\[1\]\.source_file: expected printable text .*got an object"),
        ("source_file", "a\nb", r"records\[1\]\.source_file: expected printable text .*got unprintable text"),
        ("name", "\ud800", r"records\[1\]\.name '\\ud800': contains the unprintable character U\+D800"),
        ("name", None, r"records\[1\]\.name None: expected text, got NoneType"),
        ("name", {"first": "x"}, r"records\[1\]\.name \{'first': 'x'\}: expected text, got dict"),
        ("name", "UNKNOWN", r"records\[1\]\.name 'UNKNOWN': 'unknown' is reserved \(in any letter case\)"),
        ("name", "a/b", r"records\[1\]\.name 'a/b': contains '/'"),
        ("name", "x" * 500, r"records\[1\]\.name 'x{40}'\.\.\.: 500 characters, at most 128"),
        ("name", "  ", r"records\[1\]\.name '  ': expected a non-empty name"),
        ("embedding", [0.1, 0.2, 0.3], r"records\[1\]\.embedding: expected 4 finite numbers, got 3 values"),
        ("embedding", ["1", "2", "3", "4"], r"records\[1\]\.embedding: expected 4 finite numbers"),
        ("embedding", [1, 2, 3, 10 ** 400], r"records\[1\]\.embedding: expected 4 finite numbers"),
        ("embedding", [True, 0, 0, 0], r"records\[1\]\.embedding: expected 4 finite numbers"),
        ("box", ["a", 1, 2, 3], r"records\[1\]\.box: expected null or 4 integers"),
        ("chip_png", b64(os.urandom(2000)), r"records\[1\]\.chip_png: not a PNG"),
        ("chip_png", b64(png(150, 150)[:60]), r"records\[1\]\.chip_png: corrupt or truncated image"),
        ("chip_png", b64(BOMB), r"records\[1\]\.chip_png: .*over the limit of 1,048,576 pixels"),
        ("chip_png", b64(b"\x89PNG\r\n\x1a\n" + bytes(50 << 20)), r"records\[1\]\.chip_png: .* over the chip limit"),
        ("chip_png", "not base64!", r"records\[1\]\.chip_png: not base64"),
        ("chip_png", 7, r"records\[1\]\.chip_png: expected base64 text of a PNG, got int"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else "-",
)
def test_a_malformed_field_is_named_and_nothing_is_written(gallery, tmp_path, field, value, message):
    before = state(gallery)
    path = export_with(tmp_path, good_record(**{field: value}))
    with pytest.raises(BadInputError, match=r"export\.json: " + message):
        import_file(gallery, path)
    assert state(gallery) == before


def test_malformed_documents_and_files_are_refused(gallery, tmp_path):
    before = state(gallery)
    cases = [
        ("[" * 100_000 + "]" * 100_000, r"not a gallery export JSON \(nested too deeply\)"),
        ("[1, 2]", r"expected an object at the top, got a list"),
        ('{"model": 1}', r"export\.json: model: expected printable text .*got int"),
        (json.dumps({"model": MODEL.model, "precision": MODEL.precision, "model_sha256": MODEL.sha256,
                     "records": {"a": 1}}), r"records: expected a list, got an object"),
        (json.dumps({"model": MODEL.model, "precision": MODEL.precision, "model_sha256": MODEL.sha256,
                     "records": [good_record(), 5]}), r"records\[1\]: expected an object, got int"),
        (json.dumps({"model": MODEL.model, "precision": MODEL.precision, "model_sha256": MODEL.sha256,
                     "records": [{"embedding": [0, 0, 0, 0]}]}), r"records\[0\]\.name: missing"),
    ]
    for text, message in cases:
        with pytest.raises(BadInputError, match=message):
            import_file(gallery, export_with(tmp_path, {}, text))
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    with pytest.raises(BadInputError, match=r"zero\.json: not a regular file"):
        import_file(gallery, zero)
    assert state(gallery) == before


def test_a_good_export_is_imported_with_its_chip(gallery, tmp_path):
    path = export_with(tmp_path, good_record())
    assert import_file(gallery, path) == (2, 2)
    assert gallery.people() == [("ann", 1), ("cy", 1), ("dee", 1)]
    cy = next(r for r in gallery.records() if r["name"] == "cy")
    assert cy["box"] == [1, 2, 30, 40] and cy["chip"] == png(150, 150) and cy["created"] == 1.7e9


def npz_of(tmp_path, names, vectors=None, **identity):
    path = tmp_path / "bulk.npz"
    ident = {"model": MODEL.model, "precision": MODEL.precision, "model_sha256": MODEL.sha256} | identity
    np.savez(path, names=names, vectors=np.zeros((len(names), 4), np.float32) if vectors is None else vectors, **ident)
    return path


def test_npz_entries_are_checked_before_anything_is_written(gallery, tmp_path):
    before = state(gallery)
    with pytest.raises(BadInputError, match=r"bulk\.npz: names\[1\] 'a/b': contains '/'"):
        import_file(gallery, npz_of(tmp_path, np.array(["ok", "a/b"])))
    with pytest.raises(BadInputError, match=r"bulk\.npz: names\[2\] 'Unknown': 'unknown' is reserved"):
        import_file(gallery, npz_of(tmp_path, np.array(["ok", "fine", "Unknown"])))
    with pytest.raises(BadInputError, match=r"bulk\.npz: vectors\[1\]: expected 4 finite numbers"):
        import_file(gallery, npz_of(tmp_path, np.array(["ok", "fine"]), np.array([[0, 0, 0, 0], [0, np.nan, 0, 0]])))
    with pytest.raises(BadInputError, match=r"bulk\.npz: model: expected one text value, got an array of shape \(2,\)"):
        import_file(gallery, npz_of(tmp_path, np.array(["ok"]), model=np.array(["a", "b"])))
    assert state(gallery) == before
    assert import_file(gallery, npz_of(tmp_path, np.array([b"zo\xc3\xab"]))) == (1, 1)  # byte strings: UTF-8
    assert ("zoë", 1) in gallery.people()


def test_cli_import_of_a_bad_file_is_one_line_and_exit_2(engines_dir, tmp_path, capsys):
    from facestyle.face.analyzer import FaceAnalyzer

    identity = FaceAnalyzer.from_engines(engines_dir).embedder.identity
    g = tmp_path / "g.db"
    Gallery.open(g, identity).add("ann", np.zeros(identity.dim, np.float32), "h1")
    doc = {"model": identity.model, "precision": identity.precision, "model_sha256": identity.sha256,
           "records": [good_record(name="dee", embedding=[0.0] * identity.dim, created=[1])]}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    assert main(["gallery", "import", str(path), "--gallery", str(g), "--engines", str(engines_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "facestyle gallery: error: " in err and "records[0].created: expected null" in err
    assert Gallery.open(g, identity, create=False, write=False).people() == [("ann", 1)]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("unknown", r"'unknown' is reserved"), ("UnKnown", r"'unknown' is reserved"),
        ("a/b", r"contains '/'"), ("tab\there", r"U\+0009"), ("bell\x07", r"U\+0007"),
        ("rtl\u202eoverride", r"U\+202E"), ("\ud83d", r"U\+D83D"), ("", r"expected a non-empty name"),
        ("x" * (MAX_NAME_LENGTH + 1), rf"{MAX_NAME_LENGTH + 1} characters, at most {MAX_NAME_LENGTH}"),
        (3, r"expected text, got int"),
    ],
)
def test_the_name_schema_refuses(name, message):
    with pytest.raises(BadInputError, match=message):
        check_name(name)


def test_the_name_schema_trims_and_accepts_any_script():
    assert check_name("  Zoë Ørsted ") == "Zoë Ørsted"
    assert check_name("x" * MAX_NAME_LENGTH) == "x" * MAX_NAME_LENGTH
    assert check_name("میرزا\u200cعلی") == "میرزا\u200cعلی"  # Persian's zero-width non-joiner
    assert check_name("unknown person") == "unknown person"


def test_enrolment_uses_the_name_schema(gallery):
    with pytest.raises(BadInputError, match=r"'UNKNOWN': 'unknown' is reserved"):
        gallery.add("UNKNOWN", np.ones(4, np.float32), "h2")
    with pytest.raises(BadInputError, match=r"contains '/'"):
        gallery.add("a/b", np.ones(4, np.float32), "h2")
    assert gallery.people() == [("ann", 1)]


def test_a_gallery_whose_meta_is_corrupt_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "g.db"
    Gallery.open(path, MODEL).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'abc' WHERE key = 'dim'")
    with pytest.raises(GalleryError, match=r"g\.db: corrupted gallery \(its meta dim 'abc' is not a positive integer\)"):
        Gallery.stored_identity(path)
    with pytest.raises(GalleryError, match=r"its meta dim 'abc' is not a positive integer"):
        Gallery.open(path, MODEL)
    assert main(["gallery", "list", "--gallery", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: " in err and "meta dim 'abc'" in err
