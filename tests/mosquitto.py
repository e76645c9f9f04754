"""A throwaway Mosquitto broker on 127.0.0.1 (Debian's /usr/sbin/mosquitto) in a temp folder.

Persistence is on, so that stopping and starting it again (:meth:`Broker.restart`) keeps retained messages
and the subscriptions and queued messages of clients that connected with ``clean_session=False``, as a broker people run does.
Always stopped by :meth:`Broker.stop` (the fixture calls it).
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from facestyle.triton.local import free_port

MOSQUITTO = Path("/usr/sbin/mosquitto")


def unavailable() -> str | None:
    """Why no broker can be started here, or None."""
    if not MOSQUITTO.is_file():
        return f"Mosquitto ({MOSQUITTO}) is not installed: apt-get install mosquitto"
    try:
        import paho.mqtt.client  # noqa: F401 (imported only to skip without paho)
    except ImportError:
        return "paho-mqtt (extra 'mqtt') is not installed"
    return None


class Broker:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="facestyle-mosquitto-"))
        self.port = free_port()
        self.config = self.root / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                               f"persistence_location {self.root}/\nuser {getpass.getuser()}\n"
                               f"log_dest file {self.root}/log\n")
        self.process: subprocess.Popen | None = None

    def url(self, prefix: str = "facestyle") -> str:
        return f"mqtt://127.0.0.1:{self.port}/{prefix}"

    def start(self, timeout: float = 30.0) -> Broker:
        self.process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # until it accepts connections
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.process.returncode}): {self.process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def kill(self) -> None:
        """Stop it as a service manager does (SIGTERM): it saves retained messages and persistent clients' queues, then exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> Broker:
        self.kill()
        return self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def started(purpose: str):
    """The body of a pytest fixture: a broker for ``purpose`` on a free port, stopped afterwards, or a skip that says
    what is missing."""
    import pytest

    reason = unavailable()
    if reason:
        pytest.skip(f"no MQTT broker for {purpose}: {reason}")
    running = Broker()
    try:
        yield running.start()
    finally:
        running.stop()
