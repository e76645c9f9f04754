"""The README's Python snippets run as written: every ```python block, in order, in one namespace, in a folder
holding the files they name (real photos under those names, and an ``engines`` folder built by our code)."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import FACES, SHARED_DATA, require_shared

README = Path(__file__).resolve().parents[1] / "README.md"
NEEDS_A_SERVER = "TritonFaces("  # the Triton client snippet talks to a running tritonserver (tests/triton_serving)


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_its_snippets_and_only_the_triton_one_is_left_out():
    blocks = python_blocks()
    assert len(blocks) >= 6
    assert [NEEDS_A_SERVER in b for b in blocks].count(True) == 1


@pytest.fixture
def workdir(tmp_path, engines_dir, monkeypatch):
    from facestyle.export.build import build
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.images import save_image

    faces = require_shared(FACES)
    engines = tmp_path / "engines"
    engines.mkdir()
    for model in engines_dir.iterdir():
        (engines / model.name).symlink_to(model, target_is_directory=True)
    build(engines, models=("style-starry_night",))
    named = {"group.jpg": "two_people.jpg", "a.jpg": "obama.jpg", "b.jpg": "obama2.jpg", "ada.jpg": "biden.jpg",
             "door-camera.jpg": "obama_and_biden.jpg"}
    for name, source in named.items():
        shutil.copy(next(faces.rglob(source)), tmp_path / name)
    shutil.copy(require_shared(SHARED_DATA / "content" / "test_photos") / "golden_gate.jpg", tmp_path / "photo.jpg")
    with FaceAnalyzer.from_engines(engines_dir) as analyzer:
        for chip_name, photo in (("a.png", "a.jpg"), ("b.png", "b.jpg")):
            save_image(analyzer.faces(str(tmp_path / photo))[0].chip, tmp_path / chip_name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_python_snippets_run_as_written(workdir, capsys):
    namespace: dict = {}
    for block in python_blocks():
        if NEEDS_A_SERVER not in block:
            exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "[('ada.jpg', 'enrolled')] True" in out  # the enrolment line prints what its comment says
    assert namespace["same_person"] and namespace["embedder"].distance(namespace["a"], namespace["b"]) < 0.6
    assert namespace["out"].shape == namespace["photo"].shape and (workdir / "photo-starry.jpg").is_file()
    first = namespace["FaceEmbedder"].from_engines("engines").embed(namespace["chip"])[0]
    assert np.abs(namespace["vector"] - first).max() < 1e-5
