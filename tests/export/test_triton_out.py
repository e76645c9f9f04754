"""export-triton --out: replaces only a repository it wrote (or an empty folder); never a file, another
folder, or the engines folder; '.' works."""

import os

import pytest

from facestyle.cli import main

pytest.importorskip("onnx")


def export(out, engines, *extra):
    return main(["export-triton", "--out", str(out), "--engines", str(engines), "--models", "face-embed",
                 "--platform", "python", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_an_unrelated_folder_is_refused_and_kept(engines_dir, tmp_path, capsys):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"not mine to delete")
    assert export(mine, engines_dir) == 2
    line = one_error_line(capsys)
    assert line.startswith("facestyle export-triton: error: --out ")
    assert "a folder export-triton did not write (1 entries: holiday.jpg)" in line and "it would be replaced" in line
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"] and (mine / "holiday.jpg").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no staging folder left behind


def test_a_file_is_refused_and_kept(engines_dir, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert export(target, engines_dir) == 2
    assert "exists and is not a folder" in one_error_line(capsys)
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("where", ["engines", "inside", "above"])
def test_the_engines_folder_is_never_replaced(engines_dir, tmp_path, capsys, where):
    import shutil

    engines = tmp_path / "top" / "engines"
    shutil.copytree(engines_dir / "face-embed", engines / "face-embed")
    out = {"engines": engines, "inside": engines / "repo", "above": tmp_path / "top"}[where]
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert export(out, engines) == 2
    line = one_error_line(capsys)
    assert {"engines": "is the engines folder", "inside": "is inside the engines folder",
            "above": "holds the engines folder"}[where] in line
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_a_previous_repository_and_an_empty_folder_are_replaced(engines_dir, tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()  # empty: nothing to lose
    assert export(repo, engines_dir) == 0
    (repo / "face-embed" / "stale.txt").write_text("from the last export")
    assert export(repo, engines_dir) == 0  # its own output: replaced whole
    assert not (repo / "face-embed" / "stale.txt").exists() and (repo / "face-embed" / "config.pbtxt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_out_dot_is_refused_with_one_line(tmp_path, capsys, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    (here / "work.txt").write_text("keep me")
    monkeypatch.chdir(here)
    assert export(".", tmp_path / "engines") == 2
    assert one_error_line(capsys).endswith(f"--out {here}: is the current folder or holds it; "
                                           "give a folder beside or below it")
    assert os.getcwd() == str(here) and (here / "work.txt").read_text() == "keep me"
