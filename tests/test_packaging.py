"""The distribution as users get it: the sdist and the wheel hold every package, module and data file, the
version is pyproject.toml's everywhere, the extras keep onnxruntime and onnxruntime-gpu apart, and the wheel,
installed (not editable) into a fresh virtual environment, runs the ``facestyle`` command there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from conftest import FACES, REPO, require_shared

ROOTS = {"facestyle": "runtime", "facestyle.export": "export"}  # package -> source folder, as in pyproject.toml
DATA_FILES = {"runtime/serve/page": ("*",), "export/style/weights": ("*.safetensors", "*.card.json")}
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "engines",
                                    "runs", ".whl", ".gl", "site")
PIP_TIMEOUT_S = 900  # a hang guard only: a cold pip cache downloads onnxruntime


@dataclass(frozen=True)
class Built:
    source: Path  # the copy of the repository both were built from
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """``python -m build`` (the sdist, then the wheel from the sdist) of a copy of the repository, so nothing is
    written into the working tree."""
    work = tmp_path_factory.mktemp("dist")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(work / "out"), str(source)],
                          capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,), (wheel,) = (work / "out").glob("*.tar.gz"), (work / "out").glob("*.whl")
    return Built(source, sdist, wheel)


def installed_path(source: Path, file: Path) -> str:
    """Where a file of the source tree lands in the wheel: ``runtime/serve/app.py`` -> ``facestyle/serve/app.py``."""
    relative = file.relative_to(source)
    for package, folder in ROOTS.items():
        if relative.parts[0] == folder:
            return "/".join([*package.split("."), *relative.parts[1:]])
    raise AssertionError(f"{relative} is outside {sorted(ROOTS.values())}")


def source_packages(source: Path) -> set[str]:
    """Every folder holding an ``__init__.py`` under the roots, by the name it installs under."""
    return {installed_path(source, init.parent).replace("/", ".")
            for folder in ROOTS.values() for init in (source / folder).rglob("__init__.py")}


def shipped_files(source: Path) -> set[Path]:
    """Every module under the roots and every data file the package data names."""
    modules = {p for folder in ROOTS.values() for p in (source / folder).rglob("*.py") if "__pycache__" not in p.parts}
    data = {p for folder, patterns in DATA_FILES.items() for pattern in patterns
            for p in (source / folder).glob(pattern) if p.is_file()}
    return modules | data


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


def requirement_names(metadata, extras: tuple[str, ...] = ()) -> set[str]:
    """The distributions ``pip install facestyle[extras]`` asks for, following the extras that name facestyle."""
    names, seen, pending = set(), set(), ["", *extras]  # "": the base requirements
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in requirements:
            applies = req.marker is None if not extra else req.marker is not None and req.marker.evaluate({"extra": extra})
            if not applies:
                continue
            if req.name == "facestyle":
                pending.extend(req.extras)
            else:
                names.add(req.name.lower())
    return names


@pytest.mark.slow
def test_the_wheel_holds_every_package_module_and_data_file(built):
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
    expected = {installed_path(built.source, f) for f in shipped_files(built.source)}
    assert {"facestyle/export/embedding/__init__.py", "facestyle/serve/page/index.html"} <= expected
    assert any(e.endswith(".safetensors") for e in expected) and any(e.endswith(".card.json") for e in expected)
    assert sorted(expected - names) == []
    wheel_packages = {n.rpartition("/")[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert wheel_packages == source_packages(built.source)
    assert {n.split("/")[0] for n in names} == {"facestyle", built.wheel.name.split("-py3")[0] + ".dist-info"}


@pytest.mark.slow
def test_the_sdist_holds_what_the_wheel_is_built_from(built):
    with tarfile.open(built.sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    expected = {str(f.relative_to(built.source)) for f in shipped_files(built.source)}
    assert sorted(expected - names) == []
    assert {"pyproject.toml", "setup.py", "README.md"} <= names


@pytest.mark.slow
def test_the_version_is_pyprojects_in_the_wheel_and_at_run_time(built):
    tomllib = pytest.importorskip("tomllib")
    import facestyle

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert wheel_metadata(built.wheel)["Version"] == version
    assert facestyle.__version__ == version
    from facestyle.serve.app import create_app
    from facestyle.serve.service import ServeSettings, Service

    assert create_app(Service(ServeSettings()), load=False).openapi()["info"]["version"] == version


def test_a_source_tree_without_metadata_reports_an_unknown_version(tmp_path):
    (tmp_path / "facestyle").symlink_to(REPO / "runtime", target_is_directory=True)
    # -S: no site-packages, so no installed facestyle metadata can be found
    done = subprocess.run([sys.executable, "-S", "-c", "import facestyle; print(facestyle.__version__)"],
                          cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)})
    assert (done.returncode, done.stdout.strip()) == (0, "0+unknown"), done.stderr


def test_without_onnxruntime_a_model_names_the_extra_to_install(monkeypatch, tmp_path):
    from facestyle.backends.onnxruntime import OnnxRuntimeBackend
    from facestyle.errors import BackendUnavailableError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what importing it does where it is not installed
    with pytest.raises(BackendUnavailableError, match=r"^onnxruntime is not installed: pip install 'facestyle\[cpu\]'"):
        OnnxRuntimeBackend(tmp_path / "model.onnx").activate()


@pytest.mark.slow
def test_the_extras_keep_onnxruntime_and_onnxruntime_gpu_apart(built):
    metadata = wheel_metadata(built.wheel)
    assert {"numpy", "pillow"} <= requirement_names(metadata)
    assert requirement_names(metadata) & {"onnxruntime", "onnxruntime-gpu"} == set()
    assert "onnxruntime" in requirement_names(metadata, ("cpu",))
    gpu = requirement_names(metadata, ("gpu",))
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu
    test = requirement_names(metadata, ("test",))
    assert "onnxruntime" in test and "onnxruntime-gpu" not in test and "ruff" in test


def run_in(venv: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)


def pip_install(venv: Path, *what: str, cwd: Path) -> None:
    done = run_in(venv, sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                  "--disable-pip-version-check", *what, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_venv_runs_the_cli(built, engines_dir, tmp_path):
    faces = require_shared(FACES)
    obama, obama2, biden = (str(next(faces.rglob(name))) for name in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip_install(venv, str(built.wheel), cwd=tmp_path)  # the base install: no onnxruntime of either kind
    where = run_in(venv, "python", "-c", "import facestyle; print(facestyle.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr

    version = run_in(venv, "facestyle", "--version", cwd=tmp_path)
    assert (version.returncode, version.stdout.split()) == (0, ["facestyle", wheel_metadata(built.wheel)["Version"]])
    usage = run_in(venv, "facestyle", "--help", cwd=tmp_path)
    assert usage.returncode == 0 and "verify" in usage.stdout

    engines = ("--engines", str(engines_dir))
    missing = run_in(venv, "facestyle", "verify", *engines, obama, obama2, cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "pip install 'facestyle[cpu]'" in missing.stderr

    pip_install(venv, f"{built.wheel}[cpu]", cwd=tmp_path)
    for a, b, same in ((obama, obama2, True), (obama, biden, False)):
        done = run_in(venv, "facestyle", "verify", "--json", *engines, a, b, cwd=tmp_path)
        assert done.returncode == (0 if same else 1), done.stderr  # like cmp: 0 the same person, 1 different
        report = json.loads(done.stdout)
        assert report["same"] is same and (report["distance"] <= report["threshold"]) is same
