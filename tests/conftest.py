"""Shared fixtures: real face chips made by dlib itself, and artifacts built once per test run."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from facestyle.face.analyzer import EmbedStepInFront

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
if SHARED_DATA.is_dir():  # the data folder the build's calibration and measurement read (facestyle.export.datasets)
    os.environ.setdefault("FACESTYLE_DATA", str(SHARED_DATA))
FACES = SHARED_DATA / "faces"


def import_blocker(*blocked: str) -> str:
    """Python source that makes importing any of ``blocked`` (top-level or dotted names) fail, for subprocess tests."""
    return textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in {blocked!r}):
                    raise ImportError(f"{{name}} is blocked for this test", name=name)

        sys.meta_path.insert(0, Block())
        """
    )


def save_add_one_onnx(path: Path, metadata: dict[str, str] | None = None) -> Path:
    """A tiny real model for backend tests: y = x + 1 on float32[batch, 3], with ``metadata_props``."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "add_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the shared data folder beside the repo), which is absent here")
    return path


@pytest.fixture(scope="session")
def dlib():
    return pytest.importorskip("dlib", reason="dlib-bin (the reference oracle) is not installed: pip install dlib-bin")


@pytest.fixture(scope="session")
def model_files():
    from facestyle.export.dlib.files import RECOGNITION_MODEL, SHAPE_PREDICTOR_5, locate_dlib_model

    return {"recognition": locate_dlib_model(RECOGNITION_MODEL), "shape5": locate_dlib_model(SHAPE_PREDICTOR_5)}


@pytest.fixture(scope="session")
def dlib_models(dlib, model_files):
    return {
        "detector": dlib.get_frontal_face_detector(),
        "shape5": dlib.shape_predictor(str(model_files["shape5"])),
        "recognition": dlib.face_recognition_model_v1(str(model_files["recognition"])),
    }


def dlib_chips(image: np.ndarray, models: dict, upsample: int = 0) -> list[np.ndarray]:
    """Aligned chips exactly as dlib makes them: detector, 5-point landmarks, get_face_chip."""
    import dlib

    rects = models["detector"](image, upsample)
    return [dlib.get_face_chip(image, models["shape5"](image, r), size=150, padding=0.25) for r in rects]


@pytest.fixture(scope="session")
def astronaut_chip(dlib_models):
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    chips = dlib_chips(load_image(skimage_data_dir() / "astronaut.png"), dlib_models)
    assert len(chips) == 1, "dlib should find exactly Eileen Collins' face in skimage's astronaut"
    return chips[0]


@pytest.fixture(scope="session")
def shared_chips(dlib_models):
    """{file name: [chips]} for every distinct photo in ../shared/data/faces."""
    from facestyle.images import load_image

    root = require_shared(FACES)
    seen, out = set(), {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        out[str(path.relative_to(root))] = dlib_chips(load_image(path), dlib_models)
    return out


@pytest.fixture(scope="session")
def engines_dir(tmp_path_factory):
    """``facestyle build`` of the face models, run once into a temporary folder."""
    from facestyle.export.build import build

    out = tmp_path_factory.mktemp("engines")
    build(out, models=("face-embed", "face-detect", "landmarks-5"))
    return out


@pytest.fixture(scope="session")
def style_engines(tmp_path_factory):
    """``facestyle build`` of the first shipped style (trained by our own code), into a temporary folder."""
    from facestyle.export.build import build
    from facestyle.export.style.shipped import shipped_styles

    styles = shipped_styles()
    if not styles:
        pytest.fail("no shipped style weights in export/style/weights")
    out = tmp_path_factory.mktemp("style-engines")
    build(out, models=(f"style-{styles[0]}",))
    return out, styles[0]


@pytest.fixture(scope="session")
def face_onnx(engines_dir):
    return engines_dir / "face-embed" / "fp32.onnx"


@pytest.fixture(scope="session")
def torch_embedder(model_files):
    from facestyle.export.dlib.recognition import read_recognition_net
    from facestyle.export.models.face_embedder import module_from_dlib

    return module_from_dlib(read_recognition_net(model_files["recognition"]))


class CountingEmbedStep(EmbedStepInFront):
    """The analyzer's own embed step with a record of each call's chip count; closing it leaves the embedder
    behind it open (a fixture shared by many tests)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.calls = []

    def embed(self, chips):
        self.calls.append(len(chips))
        return self.inner.embed(chips)

    def close(self):
        pass


# -- the bundled tritonserver, started once per test run for every Triton test module --
@pytest.fixture(scope="session")
def triton_venv():
    from facestyle.errors import BackendUnavailableError
    from facestyle.triton.local import ensure_venv

    try:
        return ensure_venv()
    except BackendUnavailableError as exc:
        pytest.skip(f"the nvidia-pytriton wheel cannot be installed here: {exc}")


@pytest.fixture(scope="session")
def triton_server(triton_venv, engines_dir, tmp_path_factory):
    from facestyle.export.triton_repo import export_repository
    from facestyle.triton.local import LocalTriton

    root = tmp_path_factory.mktemp("triton")
    export_repository(root / "repo", engines_dir, platform="python")
    server = LocalTriton(triton_venv, root / "repo", log_file=root / "tritonserver.log")
    with server:  # stopped at the end of the test run, whatever happens
        yield server
