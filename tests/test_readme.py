"""The code on every page runs as written: README.md and each page of docs/.

Per page, in order, in one folder holding the files the pages name (real photos under those names, face chips,
a short door-camera video and an ``engines`` folder built by our code): every ```python block runs in one
namespace, and every ```bash block runs in bash with the installed ``facestyle`` on PATH and must exit 0.
A block whose first line is ``# not run in tests: <reason>`` is left out, and must say why. Where a page's code
holds a snippet listed in ``CHECKS``, what that snippet's comment promises is asserted after the page ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import FACES, SHARED_DATA, require_shared

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
RUNNABLE = ("python", "bash")
# Tags that mean python or bash but would escape this runner: write ```python or ```bash instead.
RUNNABLE_ALIASES = {"py", "python3", "pycon", "sh", "shell", "console", "zsh"}
NOT_RUN = "# not run in tests"
NOT_RUN_WITH_REASON = re.compile(r"# not run in tests: \S.{3,}")
BASH_TIMEOUT_S = 300
PHOTOS = {"a.jpg": "obama.jpg", "b.jpg": "obama2.jpg", "ada.jpg": "biden.jpg", "group.jpg": "two_people.jpg",
          "door-camera.jpg": "obama_and_biden.jpg", "portrait.jpg": "obama.jpg"}
DOOR_VIDEO_FRAMES = 8
DOOR_VIDEO_WIDTH = 800  # the two faces of the door-camera photo are found from about 800 px wide


@dataclass(frozen=True)
class Block:
    page: Path
    number: int  # 1-based among the page's fenced blocks
    lang: str
    code: str

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE and not self.code.lstrip().startswith(NOT_RUN)

    def __str__(self) -> str:
        first = self.code.strip().splitlines()[0] if self.code.strip() else ""
        return f"{self.page.relative_to(REPO)} block {self.number} ({self.lang}: {first[:70]})"


def blocks_of(page: Path) -> list[Block]:
    found = []
    for number, match in enumerate(FENCE.finditer(page.read_text()), start=1):
        indent = match["indent"]
        code = "".join(line.removeprefix(indent) for line in match["body"].splitlines(keepends=True))
        found.append(Block(page, number, match["lang"], code))
    return found


def runnable_code(page: Path) -> str:
    return "\n".join(b.code for b in blocks_of(page) if b.runs)


PAGES_WITH_CODE = [p for p in PAGES if any(b.runs for b in blocks_of(p))]


# -- what the snippets' comments promise --------------------------------------------------------
def enrolment_printed_its_outcome(ns, out, folder):
    assert "[('ada.jpg', 'enrolled')] True" in out  # the enrolment line prints what its comment says


def two_chips_of_one_person_match(ns, out, folder):
    assert ns["same_person"] and ns["embedder"].distance(ns["a"], ns["b"]) < 0.6


def stylized_photo_keeps_its_size(ns, out, folder):
    assert ns["out"].shape == ns["photo"].shape and (folder / "photo-starry.jpg").is_file()


def async_embedding_equals_the_batch_one(ns, out, folder):
    first = ns["FaceEmbedder"].from_engines("engines").embed(ns["chip"])[0]
    assert np.abs(ns["vector"] - first).max() < 1e-5


def verify_printed_true(ns, out, folder):
    assert "True" in out.split()


def chips_wrote_both_faces_of_the_group(ns, out, folder):
    assert len(list((folder / "chips").glob("*.png"))) == 2


def identify_json_names_ada(ns, out, folder):
    found = json.loads((folder / "door.json").read_text())
    assert "ada" in json.dumps(found)


def watch_wrote_the_named_video(ns, out, folder):
    assert (folder / "door-named.mp4").stat().st_size > 0
    lines = (folder / "frames.jsonl").read_text().splitlines()
    assert lines and "ada" in "".join(lines)


# (snippet on some page, what is then true); test_every_check_has_its_snippet keeps this list honest.
CHECKS = [
    ('print([(o.file, o.status) for o in result], result.committed)', enrolment_printed_its_outcome),
    ("same_person = embedder.distance(a, b) <= embedder.threshold", two_chips_of_one_person_match),
    ('save_image(out, "photo-starry.jpg")', stylized_photo_keeps_its_size),
    ("vector = future.result()", async_embedding_equals_the_batch_one),
    ('print(analyzer.verify("a.jpg", "b.jpg").same)', verify_printed_true),
    ("facestyle chips group.jpg --out chips/", chips_wrote_both_faces_of_the_group),
    ("--json --top-k 3 > door.json", identify_json_names_ada),
    ("--out door-named.mp4 --json-lines frames.jsonl", watch_wrote_the_named_video),
]


# -- the folder the pages run in ----------------------------------------------------------------
@pytest.fixture(scope="session")
def pages_folder(tmp_path_factory, engines_dir) -> Path:
    """Built once: engines (face models and starry_night), the photos, two face chips and a short video."""
    from facestyle.export.build import build
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.images import load_image, save_image

    faces = require_shared(FACES)
    folder = tmp_path_factory.mktemp("pages")
    shutil.copytree(engines_dir, folder / "engines", copy_function=link_or_copy,
                    ignore=shutil.ignore_patterns(".cache"))
    build(folder / "engines", models=("style-starry_night",))
    for name, source in PHOTOS.items():
        shutil.copy(next(faces.rglob(source)), folder / name)
    shutil.copy(require_shared(SHARED_DATA / "content" / "test_photos") / "golden_gate.jpg", folder / "photo.jpg")
    (folder / "photos").mkdir()  # a folder of photos, for the pages' folder examples
    for name in ("photo.jpg", "portrait.jpg"):
        shutil.copy(folder / name, folder / "photos" / name)
    with FaceAnalyzer.from_engines(folder / "engines") as analyzer:
        for chip_name, photo in (("a.png", "a.jpg"), ("b.png", "b.jpg")):
            save_image(analyzer.faces(str(folder / photo))[0].chip, folder / chip_name)
    write_door_video(load_image(folder / "door-camera.jpg"), folder / "door.mp4")
    return folder


def write_door_video(photo: np.ndarray, path: Path) -> None:
    """A few frames of the door-camera photo, as a camera by the door would record them."""
    from PIL import Image

    from facestyle.video import VideoOutput

    height = round(photo.shape[0] * DOOR_VIDEO_WIDTH / photo.shape[1]) // 2 * 2
    frame = np.asarray(Image.fromarray(photo).resize((DOOR_VIDEO_WIDTH, height)))
    with VideoOutput(path, 10.0, (DOOR_VIDEO_WIDTH, height)) as video:
        for _ in range(DOOR_VIDEO_FRAMES):
            video.write(frame)


def link_or_copy(source: str, target: str) -> None:
    # Built artifacts are replaced, never edited in place, so a hard link keeps each page's copy separate.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@pytest.fixture
def workdir(pages_folder, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the prepared folder per page, as the current directory."""
    folder = tmp_path / "work"
    shutil.copytree(pages_folder, folder, copy_function=link_or_copy)
    monkeypatch.chdir(folder)
    return folder


def run_bash(block: Block, folder: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FACESTYLE_ENGINES", None)  # the pages say where the engines are, or mean ./engines
    try:
        done = subprocess.run(["bash", "-e", "-c", block.code], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=BASH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block}: still running after {BASH_TIMEOUT_S} s")
    assert done.returncode == 0, f"{block}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def run_page(page: Path, folder: Path, capsys) -> tuple[dict, str]:
    namespace: dict = {"__name__": "__page__"}
    out = []
    for block in blocks_of(page):
        if not block.runs:
            continue
        if block.lang == "python":
            try:
                exec(compile(block.code, str(block), "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{block}: {type(exc).__name__}: {exc}") from exc
            out.append(capsys.readouterr().out)
        else:
            out.append(run_bash(block, folder))
    return namespace, "".join(out)


# -- the tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(REPO)))
def test_the_code_of_each_page_runs_as_written(page, workdir, capsys):
    namespace, out = run_page(page, workdir, capsys)
    code = runnable_code(page)
    for snippet, check in CHECKS:
        if snippet in code:
            check(namespace, out, workdir)


def test_every_check_has_its_snippet_on_some_page():
    code = "\n".join(runnable_code(page) for page in PAGES)
    missing = [snippet for snippet, _ in CHECKS if snippet not in code]
    assert not missing, f"snippets checked here but on no page (or left out of the tests): {missing}"


def test_every_block_left_out_says_why_and_runnable_code_is_tagged_to_run():
    blocks = [b for page in PAGES for b in blocks_of(page)]
    assert sum(b.runs for b in blocks) >= 10
    unexplained = [str(b) for b in blocks if b.lang in RUNNABLE and b.code.lstrip().startswith(NOT_RUN)
                   and not NOT_RUN_WITH_REASON.match(b.code.lstrip())]
    assert not unexplained, f"left out of the tests without a reason: {unexplained}"
    escaping = [str(b) for b in blocks if b.lang in RUNNABLE_ALIASES]
    assert not escaping, f"tag these ```python or ```bash so that they run: {escaping}"


def test_the_runner_reads_indented_fences_and_the_reasons(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Text\n\n```python\nx = 1\n```\n\n- item\n\n    ```bash\n    echo hi\n    ```\n\n"
                    "```bash\n# not run in tests: needs a camera\nfacestyle watch --source 0\n```\n\n```text\nout\n```\n")
    blocks = blocks_of(page)
    assert [(b.lang, b.code, b.runs) for b in blocks] == [
        ("python", "x = 1\n", True), ("bash", "echo hi\n", True),
        ("bash", "# not run in tests: needs a camera\nfacestyle watch --source 0\n", False), ("text", "out\n", False)]
    assert NOT_RUN_WITH_REASON.match(blocks[2].code) and not NOT_RUN_WITH_REASON.match("# not run in tests:\nx")
