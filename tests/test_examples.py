"""The scripts in examples/ run as their docstrings say, on real photos, and print the right answers."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FACES, SHARED_DATA, require_shared

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TESTED = {"verify_two_photos.py", "enrol_and_identify.py", "stylize_photo.py", "faces_in_a_video.py",
          "service_client.py"}


def photo(name: str) -> Path:
    return next(require_shared(FACES).rglob(name))


@pytest.fixture(scope="module")
def engines(engines_dir, style_engines, tmp_path_factory) -> Path:
    """The face models and the first shipped style in one folder, as ``facestyle build`` leaves them (copies:
    a style whose folder links elsewhere is refused)."""
    from test_readme import link_or_copy

    root = tmp_path_factory.mktemp("example-engines")
    for model in [*engines_dir.iterdir(), *style_engines[0].iterdir()]:
        if model.is_dir():
            shutil.copytree(model, root / model.name, copy_function=link_or_copy, ignore=shutil.ignore_patterns(".cache"))
    return root


def run_example(script: str, *args, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_example_says_what_it_shows_and_how_to_run_it_and_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == TESTED
    for name in scripts:
        docstring = ast.get_docstring(ast.parse((EXAMPLES / name).read_text()))
        assert docstring and f"python examples/{name}" in docstring, f"{name}: no docstring saying how to run it"


def test_verify_says_same_for_two_photos_of_one_man_and_different_for_two_men(engines):
    same = run_example("verify_two_photos.py", photo("obama.jpg"), photo("obama2.jpg"), "--engines", engines)
    other = run_example("verify_two_photos.py", photo("obama.jpg"), photo("biden.jpg"), "--engines", engines)
    distance, threshold = map(float, re.search(r"distance ([\d.]+), threshold ([\d.]+)", same).groups())
    assert same.startswith("same person") and distance < threshold == 0.6
    assert other.startswith("different people")


def test_enrol_and_identify_names_both_men_of_the_joint_photo(engines, tmp_path):
    out = run_example("enrol_and_identify.py", tmp_path / "people.db", "--enrol", "joe", photo("biden.jpg"),
                      "--enrol", "barack", photo("obama.jpg"), photo("obama_and_biden.jpg"), "--engines", engines)
    assert "biden.jpg: enrolled as joe" in out and "obama.jpg: enrolled as barack" in out
    names = re.findall(r"obama_and_biden.jpg: face at \(.*?\) is (\w+)", out)
    assert "joe" in names and "barack" in names


def test_stylize_writes_the_photo_at_its_size_in_the_style(engines, style_engines, tmp_path):
    from facestyle.images import load_image

    name = style_engines[1]
    source = require_shared(SHARED_DATA / "content" / "test_photos") / "golden_gate.jpg"
    out = run_example("stylize_photo.py", source, tmp_path / "styled.jpg", "--style", name, "--strength", "0.8",
                      "--engines", engines)
    assert f"styles built: {name}" in out
    assert load_image(tmp_path / "styled.jpg").shape == load_image(source).shape


def test_faces_in_a_video_names_the_enrolled_face_in_every_frame(engines, tmp_path):
    pytest.importorskip("cv2", reason="the video extra is not installed: pip install 'facestyle[video]'")
    from facestyle.images import load_image
    from test_readme import DOOR_VIDEO_FRAMES, write_door_video

    write_door_video(load_image(photo("obama_and_biden.jpg")), tmp_path / "door.mp4")
    run_example("enrol_and_identify.py", tmp_path / "people.db", "--enrol", "joe", photo("biden.jpg"),
                photo("biden.jpg"), "--engines", engines)
    out = run_example("faces_in_a_video.py", tmp_path / "door.mp4", "--gallery", tmp_path / "people.db",
                      "--every", "2", "--engines", engines)
    frames = out.splitlines()
    assert [int(line.split()[1]) for line in frames] == list(range(0, DOOR_VIDEO_FRAMES, 2))
    assert all("'joe'" in line for line in frames)


def test_the_service_client_verifies_enrols_and_identifies_over_http(engines, tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'facestyle[serve]'")
    server = subprocess.Popen([sys.executable, "-m", "facestyle.serve", "--engines", str(engines), "--gallery",
                               str(tmp_path / "people.db"), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = wait_for_server(server)
        out = run_example("service_client.py", url, photo("obama.jpg"), photo("obama2.jpg"),
                          "--enrol", "joe", photo("biden.jpg"), "--identify", photo("obama_and_biden.jpg"))
    finally:
        server.terminate()
        server.wait(30)
    assert out.startswith("verify: same person")
    assert re.search(r'^enrol: .*"enrolled"', out, re.M)
    assert re.search(r"^identify: face at \[.*\] is joe$", out, re.M)


def wait_for_server(server: subprocess.Popen, timeout_s: float = 180) -> str:
    """The address the server prints once it listens, after its /readyz answers 200."""
    import urllib.error
    import urllib.request

    lines = []
    for line in server.stdout:
        lines.append(line)
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            break
    else:
        raise AssertionError(f"the server exited ({server.wait()}): {''.join(lines)}")
    url = match.group(1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return url
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"the server was not ready within {timeout_s} s")
