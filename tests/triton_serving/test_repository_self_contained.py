"""The repository ``facestyle export-triton`` writes carries the runtime modules its pipeline model imports
(``face-pipeline/1/facestyle/``), so a Triton whose Python has numpy and Pillow but no facestyle serves it: no
``pip install`` when a container starts.

Without a server: the copied modules are the runtime's torch-free files only, small, and ``model.py`` imports
them in a Python where facestyle is not importable. Against a REAL tritonserver (PyPI's nvidia-pytriton, the
venv the other Triton tests use): served from a venv made of that venv's packages less facestyle, a probe model
in the same server finds no facestyle, and the pipeline's boxes and embeddings for real photos equal the
in-process pipeline's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FACES, import_blocker
from facestyle.errors import BackendUnavailableError

BUNDLE = Path("face-pipeline") / "1" / "facestyle"
MAX_BUNDLE_BYTES = 1 << 20  # the copied runtime modules (about 0.4 MB of source); the models are the bulk
EMBEDDING_TOLERANCE = 1e-5  # largest |difference| of an embedding element, Triton against in-process

PROBE_CONFIG = """name: "probe"
backend: "python"
max_batch_size: 0
input { name: "X" data_type: TYPE_INT32 dims: [ 1 ] }
output { name: "FACESTYLE" data_type: TYPE_STRING dims: [ 1 ] }
instance_group { count: 1 kind: KIND_CPU }
"""
PROBE_MODEL = '''import importlib.util, json
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        spec = importlib.util.find_spec("facestyle")  # in the server's own Python, outside any repository folder
        found = json.dumps(None if spec is None else spec.origin).encode()
        return [pb_utils.InferenceResponse([pb_utils.Tensor("FACESTYLE", np.array([found], np.object_))])
                for _ in requests]
'''


@pytest.fixture(scope="module")
def repository(engines_dir, tmp_path_factory):
    from facestyle.export.triton_repo import export_repository

    out = tmp_path_factory.mktemp("self-contained") / "repo"
    export_repository(out, engines_dir, platform="python")
    return out


def test_the_pipeline_carries_only_the_runtime_modules_it_imports(repository):
    bundle = repository / BUNDLE
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert {"__init__.py", "errors.py", "images.py", "face/analyzer.py", "face/detector.py", "face/embedder.py",
            "face/landmarks.py", "face/align.py", "triton/remote.py"} <= set(files)
    assert all(f.endswith(".py") for f in files), files  # sources only: no caches, no models, no data
    assert not [f for f in files if f.split("/")[0] in ("export", "tests", "cli", "serve", "streams", "bench")], files
    size = sum((bundle / f).stat().st_size for f in files)
    assert size < MAX_BUNDLE_BYTES, size
    top_level = re.compile(r"^(?:import|from)\s+(torch|onnx|cv2|tensorrt|fastapi)\b", re.M)
    assert not [f for f in files if top_level.search((bundle / f).read_text())]  # heavy imports stay lazy
    version = sorted(p.name for p in (repository / "face-pipeline" / "1").iterdir())
    assert version == ["contracts.json", "facestyle", "landmarks.npz", "model.py"]


def test_model_py_imports_the_copied_runtime_where_facestyle_is_not_installed(repository, tmp_path):
    """``python -S`` whose path holds numpy and Pillow alone (links to them): facestyle is not importable until
    model.py puts its folder first; torch, onnxruntime and OpenCV are blocked outright."""
    import PIL

    only = tmp_path / "numpy-and-pillow"
    only.mkdir()
    for package in (np, PIL):
        (only / package.__name__).symlink_to(Path(package.__file__).parent)
    version = repository / "face-pipeline" / "1"
    code = import_blocker("torch", "onnxruntime", "cv2") + f"""
import importlib.util, json, sys, types
assert importlib.util.find_spec("facestyle") is None, "facestyle is importable before model.py"
sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
spec = importlib.util.spec_from_file_location("model", {str(version / "model.py")!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() if n.split(".")[0] == "facestyle")))
"""
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(only), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert len(loaded) >= 10 and all(Path(f).is_relative_to(repository / BUNDLE) for f in loaded), loaded


# -- against a real tritonserver -------------------------------------------------------------------------------
def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.fixture(scope="module")
def venv_without_facestyle(tmp_path_factory):
    """A venv holding the Triton venv's packages (tritonserver, numpy<2, Pillow, onnxruntime), facestyle left out."""
    from facestyle.triton.local import ensure_venv

    try:
        full = ensure_venv()
    except BackendUnavailableError as exc:
        pytest.skip(f"no tritonserver here: the nvidia-pytriton wheel cannot be installed: {exc}")
    venv = tmp_path_factory.mktemp("triton-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    for entry in _site_packages(full).iterdir():
        if "facestyle" not in entry.name.lower():  # its .pth, finder and dist-info
            (_site_packages(venv) / entry.name).symlink_to(entry)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import numpy, PIL"], capture_output=True).returncode == 0
    missing = subprocess.run([python, "-c", "import facestyle"], capture_output=True, text=True)
    assert "No module named 'facestyle'" in missing.stderr
    return venv


@pytest.fixture(scope="module")
def server(venv_without_facestyle, repository, tmp_path_factory):
    pytest.importorskip("tritonclient.http", reason="tritonclient is not installed: pip install 'facestyle[triton]'")
    from facestyle.triton.local import LocalTriton

    (repository / "probe" / "1").mkdir(parents=True)
    (repository / "probe" / "config.pbtxt").write_text(PROBE_CONFIG)
    (repository / "probe" / "1" / "model.py").write_text(PROBE_MODEL)
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    with LocalTriton(venv_without_facestyle, repository, log_file=log) as running:
        yield running


def test_the_servers_python_has_no_facestyle(server):
    import tritonclient.http as http

    client = http.InferenceServerClient(server.http_url)
    try:
        request = http.InferInput("X", [1], "INT32")
        request.set_data_from_numpy(np.array([1], np.int32))
        found = client.infer("probe", [request]).as_numpy("FACESTYLE")[0]
    finally:
        client.close()
    assert json.loads(found) is None


def _photos() -> list[Path]:
    from facestyle.export.sample_inputs import skimage_data_dir

    photos = [skimage_data_dir() / "astronaut.png"]
    if FACES.exists():
        photos.append(FACES / "face_recognition_examples" / "examples" / "two_people.jpg")
    return photos


def test_the_pipeline_served_without_facestyle_equals_in_process(server, engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.images import load_image
    from facestyle.triton import TritonFaces

    photos = _photos()
    with FaceAnalyzer.from_engines(engines_dir) as local:
        expected = [local.faces(load_image(photo)) for photo in photos]
    with TritonFaces(server.http_url) as remote:
        served = remote.faces_batch(photos)
    assert sum(map(len, expected)) >= len(photos)  # every photo has a face
    for photo, want, got in zip(photos, expected, served):
        assert [list(map(int, f.box)) for f in got] == [list(map(int, f.box)) for f in want], photo.name
        for w, g in zip(want, got):
            assert float(np.abs(np.asarray(w.embedding) - g.embedding).max()) <= EMBEDDING_TOLERANCE
