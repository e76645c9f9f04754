"""A real ``tritonserver`` on this machine, from PyPI's ``nvidia-pytriton`` (for tests, benchmarks and trying things).

``nvidia-pytriton==0.7.0`` bundles Triton Inference Server 2.51.0 with the Python backend only (no
onnxruntime or TensorRT backend) and pins ``numpy<2``, so it lives in its own virtual environment,
cached under ``facestyle.paths.cache_dir("triton-venv")/<key>`` (the key: the wheel's version, this Python's
version and the facestyle checkout), with the facestyle runtime installed into it (torch-free) for the
pipeline model. Serve a repository written by ``facestyle export-triton --platform python``:

>>> venv = ensure_venv()                         # minutes the first time, then reused
>>> with LocalTriton(venv, "triton-repo") as server:
...     server.http_url, server.grpc_url         # 127.0.0.1 only, free ports

The server binds loopback only (``--http-address``/``--grpc-address 127.0.0.1``), metrics off, and is
stopped (SIGTERM, then SIGKILL) when the block ends, whatever happens in it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path

from ..errors import BackendUnavailableError, FacestyleError
from ..paths import cache_dir

PYTRITON = "nvidia-pytriton==0.7.0"
VENV_PACKAGES = (PYTRITON, "numpy<2", "Pillow>=10", "onnxruntime>=1.17", "platformdirs>=3", "setuptools>=77")
READY_TIMEOUT_S = 120.0
_DONE = ".facestyle-ready"  # written last: a venv without it is half-made and is made again


def project_root() -> Path:
    """The facestyle checkout (where pyproject.toml is), for the editable install into the venv."""
    return Path(__file__).resolve().parents[2]


def venv_key(project: Path | None = None) -> str:
    project = project or project_root()
    text = "|".join([*VENV_PACKAGES, sys.version.split()[0], str(project)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache() -> Path:
    return cache_dir("triton-venv")


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(cache: Path | None = None, project: Path | None = None, log=None) -> Path:
    """The cached venv with ``nvidia-pytriton`` and the facestyle runtime; made (atomically) if absent.

    Raises :class:`BackendUnavailableError` naming the pip step that failed (e.g. no wheel for this platform).
    """
    project = project or project_root()
    root = cache or default_cache()
    venv = root / venv_key(project)
    if (venv / _DONE).exists():
        return venv
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{venv.name}.", dir=root))
    try:
        steps = [
            [sys.executable, "-m", "venv", str(stage)],
            [str(_venv_python(stage)), "-m", "pip", "install", "-q", "--disable-pip-version-check", *VENV_PACKAGES],
            [str(_venv_python(stage)), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
             "--no-build-isolation", "-e", str(project)],
        ]
        for step in steps:
            if log:
                log(" ".join(step))
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
                raise BackendUnavailableError(f"triton venv: `{' '.join(step[2:5])} ...` failed: {tail[0]}")
        (stage / _DONE).write_text(" ".join(VENV_PACKAGES) + "\n")
        try:
            os.replace(stage, venv)
        except OSError:  # another process made it first
            shutil.rmtree(stage, ignore_errors=True)
        return venv
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise BackendUnavailableError(f"{venv}: no site-packages")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalTriton:
    """The bundled ``tritonserver`` serving ``repository`` on loopback; a context manager that always stops it."""

    def __init__(self, venv: Path, repository: str | Path, log_file: str | Path | None = None,
                 ready_timeout_s: float = READY_TIMEOUT_S):
        self.venv, self.repository = Path(venv), Path(repository)
        self.http_port, self.grpc_port = free_port(), free_port()
        while self.grpc_port == self.http_port:
            self.grpc_port = free_port()
        self.http_url, self.grpc_url = f"127.0.0.1:{self.http_port}", f"127.0.0.1:{self.grpc_port}"
        self.ready_timeout_s = ready_timeout_s
        self.log_file = Path(log_file) if log_file else None
        self.process: subprocess.Popen | None = None
        self._backends: Path | None = None

    def _backend_dir(self, site: Path) -> Path:
        """A folder whose ``python/`` holds the backend library, its utils and the stub for this Python."""
        server = site / "pytriton" / "tritonserver"
        stub = server / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
        if not stub.exists():
            raise BackendUnavailableError(f"{stub}: the Python backend has no stub for Python {sys.version_info[:2]}")
        self._backends = Path(tempfile.mkdtemp(prefix="facestyle-triton-backends-"))
        python = self._backends / "python"
        python.mkdir()
        for source in (server / "backends" / "python" / "libtriton_python.so",
                       server / "backends" / "python" / "triton_python_backend_utils.py", stub):
            (python / source.name).symlink_to(source)
        return self._backends

    def start(self) -> LocalTriton:
        site = _site_packages(self.venv)
        binary = site / "pytriton" / "tritonserver" / "bin" / "tritonserver"
        if not binary.exists():
            raise BackendUnavailableError(f"{binary}: not found (is {PYTRITON} installed in {self.venv}?)")
        env = dict(os.environ)
        # The stub links the Python it was built for and the wheel's bundled CUDA runtime: the running
        # Python's own libpython first (else Debian's, which fails on _thread.RLock), then the wheel's libs.
        libs = [sysconfig.get_config_var("LIBDIR") or "", str(site / "nvidia_pytriton.libs"), env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = ":".join(p for p in libs if p)
        env["PYTHONPATH"] = str(site)
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"
        command = [str(binary), "--model-repository", str(self.repository.resolve()),
                   "--backend-directory", str(self._backend_dir(site)),
                   "--http-address", "127.0.0.1", "--http-port", str(self.http_port),
                   "--grpc-address", "127.0.0.1", "--grpc-port", str(self.grpc_port),
                   "--allow-metrics", "false", "--allow-gpu-metrics", "false", "--allow-cpu-metrics", "false",
                   "--exit-on-error", "true", "--strict-readiness", "true", "--exit-timeout-secs", "5"]
        out = open(self.log_file, "wb") if self.log_file else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if self.log_file:
                out.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FacestyleError(f"tritonserver exited with code {self.process.returncode} before it was ready"
                                     + (f" (log: {self.log_file})" if self.log_file else ""))
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise FacestyleError(f"tritonserver on {self.http_url}: not ready after {self.ready_timeout_s:.0f} s")

    def stop(self) -> None:
        """SIGTERM (Triton finishes in-flight requests), SIGKILL after 30 s; idempotent."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self._backends is not None:
            shutil.rmtree(self._backends, ignore_errors=True)
            self._backends = None

    def __enter__(self) -> LocalTriton:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
