"""A throwaway PostgreSQL cluster on 127.0.0.1: Debian's initdb + pg_ctl in a temp folder.

Used by the PostgreSQL gallery tests and benchmarks/gallery_search.py. PostgreSQL refuses to run as
root, so as root the cluster runs as the ``postgres`` user (``runuser -u postgres --``) in a folder
it owns. Always stopped by :meth:`Cluster.stop` (the fixture and the benchmark call it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from facestyle.triton.local import free_port


def pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<v>/bin holding initdb and pg_ctl, else None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def unavailable() -> str | None:
    """Why no cluster can be started here, or None."""
    if pg_bin() is None:
        return "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    try:
        import psycopg  # noqa: F401 (imported only to skip without psycopg)
    except ImportError:
        return "psycopg 3 (extra 'postgres') is not installed"
    return None


class Cluster:
    def __init__(self):
        self.bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="facestyle-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.started = False
        self._as = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chmod(self.root, 0o700)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> Cluster:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-instructions")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=60"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if self.started:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def started(purpose: str):
    """The body of a pytest fixture: a throwaway cluster for ``purpose``, stopped afterwards, or a skip that says
    what is missing."""
    import pytest

    reason = unavailable()
    if reason:
        pytest.skip(f"no PostgreSQL server for {purpose}: {reason}")
    running = Cluster()
    try:
        yield running.start()
    finally:
        running.stop()
