"""Real servers for the serve tests: `python -m facestyle.serve` in a subprocess on 127.0.0.1, a free port.

Test modules take the fixtures with ``from serve_helpers import *`` (a conftest.py here would clash with
tests/conftest.py, which other tests import as ``conftest``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SHARED_DATA, require_shared  # tests/conftest.py (already imported by pytest)

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'facestyle[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'facestyle[serve]'")
httpx = pytest.importorskip("httpx", reason="httpx (test extra) is not installed")

EXAMPLES = SHARED_DATA / "faces" / "face_recognition_examples" / "examples"
TOKEN = "test-token-0123456789"
__all__ = ["EXAMPLES", "TOKEN", "Server", "serve_engines", "token_file", "server", "analyzer", "astronaut_bytes",
           "coffee_bytes", "examples", "httpx"]


class Server:
    """One `facestyle serve` process; ``url`` once it listens, ``stop()`` sends SIGTERM and waits."""

    def __init__(self, engines: Path, *args: str, token_file: Path | None = None):
        cmd = [sys.executable, "-m", "facestyle.serve", "--engines", str(engines), "--port", "0", *args]
        if token_file is not None:
            cmd += ["--token-file", str(token_file)]
        self.token = token_file.read_text().strip() if token_file else None
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        deadline = time.monotonic() + 60
        self.url = None
        while self.url is None:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited ({self.process.wait()}): {''.join(self.lines)}")
            self.lines.append(line)
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if match:
                self.url = match.group(1)
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start within 60 s")
        self.wait_ready()

    def headers(self, **extra) -> dict:
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return h | extra

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=kwargs.pop("timeout", 120), **kwargs)

    def wait_ready(self, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.url + "/readyz", timeout=5)
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready within {timeout} s")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="session")
def serve_engines(engines_dir, style_engines, tmp_path_factory) -> Path:
    """One artifact folder holding the face models and the first shipped style (links to the built ones)."""
    root = tmp_path_factory.mktemp("serve-engines")
    for folder in list(Path(engines_dir).iterdir()) + list(Path(style_engines[0]).iterdir()):
        if folder.is_dir():
            os.symlink(folder, root / folder.name, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture(scope="module")
def server(serve_engines, token_file, tmp_path_factory):
    """A server with a token, a gallery and a small body limit (2 MB)."""
    gallery = tmp_path_factory.mktemp("gallery") / "people.db"
    s = Server(serve_engines, "--gallery", str(gallery), "--max-body-mb", "2", "--max-delay-ms", "20",
               "--workers", "4", token_file=token_file)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def analyzer(serve_engines):
    from facestyle.face.analyzer import FaceAnalyzer

    return FaceAnalyzer.from_engines(serve_engines)


@pytest.fixture(scope="session")
def astronaut_bytes() -> bytes:
    from facestyle.export.sample_inputs import skimage_data_dir

    return (skimage_data_dir() / "astronaut.png").read_bytes()


@pytest.fixture(scope="session")
def coffee_bytes() -> bytes:
    """A real photo without a face (scikit-image's coffee cup)."""
    from facestyle.export.sample_inputs import skimage_data_dir

    return (skimage_data_dir() / "coffee.png").read_bytes()


@pytest.fixture(scope="session")
def examples() -> Path:
    return require_shared(EXAMPLES)
