"""A fleet on one machine: two real ``facestyle watch`` processes share one PostgreSQL gallery (a throwaway
cluster, tests/pgcluster.py) and publish to one Mosquitto broker (tests/mosquitto.py). While both run, a third
process enrols a person with ``facestyle enroll``; both watchers then publish ``identified`` events naming
that person, without a restart (each search reads the gallery's generation counter and fetches the new rows).

Each watcher reads its own video (a real LFW face of Colin Powell, a different photo per camera, moving on a
real photo) at its frame rate (``--realtime``), as a camera sends it; the enrolment uses a third photo of him.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from stream_scenes import LFW, face_patch, scene, write_video

import mosquitto
import pgcluster
from conftest import require_shared

pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed: pip install 'facestyle[video]'")

FPS = 8.0
CLIP_S = 240  # longer than the test needs: the watchers are stopped once both have named him
WAIT_S = 150.0  # upper bound on each wait (model loading, a busy machine); the test ends as soon as it is met
CAMERAS = {"cam-a": 38, "cam-b": 120}  # camera -> the Colin Powell photo in its video
ENROLLED_PHOTO = 74
PREFIX = "fleet"  # each watcher publishes under fleet/<its camera>, as docs/fleet.md advises


@pytest.fixture(scope="module")
def cluster():
    yield from pgcluster.started("the fleet test")


@pytest.fixture
def broker():
    yield from mosquitto.started("the fleet test")


class Events:
    """A paho subscriber collecting the JSON events published under ``PREFIX/<machine>/<source>/events``."""

    def __init__(self, broker):
        import paho.mqtt.client as paho

        self.events: list[dict] = []
        self.changed = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_connect = lambda client, *_: client.subscribe(f"{PREFIX}/+/+/events", qos=1)
        self.client.on_subscribe = lambda *_: self._note({"event": "subscribed"})
        self.client.on_message = lambda client, userdata, message: self._note(json.loads(message.payload))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.wait(lambda events: any(e["event"] == "subscribed" for e in events), "the subscription")

    def _note(self, event: dict) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait(self, done, what: str, processes=()) -> list[dict]:
        """Until ``done(events)``; fails early, with the watchers' output, if a watcher exits."""
        deadline = time.monotonic() + WAIT_S
        with self.changed:
            while not done(self.events) and time.monotonic() < deadline:
                exited = [p for p in processes if p.poll() is not None]
                assert not exited, f"a watcher exited ({exited[0].returncode}) waiting for {what}: {exited[0].log.read_text()}"
                self.changed.wait(1.0)
            assert done(self.events), f"no {what} within {WAIT_S:.0f} s; events: {self.events}"
            return list(self.events)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def camera_video(folder, camera: str, photo: int) -> str:
    """Colin Powell's face (LFW photo ``photo``) swaying left and right over a real photo, CLIP_S long."""
    patch = face_patch("Colin_Powell", photo)
    frames = scene([(patch, lambda i: (165 + 60 * math.sin(i / 6), 85))], int(CLIP_S * FPS))
    return str(write_video(folder / f"{camera}.mp4", frames, fps=FPS))


def facestyle(*args: str) -> list[str]:
    return [sys.executable, "-m", "facestyle.cli", *args]


def identified(events: list[dict], name: str) -> set[str]:
    return {e["source"] for e in events if e["event"] == "identified" and e["identity"] == name}


def started(events: list[dict]) -> set[str]:
    return {e["source"] for e in events if e["event"] == "track_start"}


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # Ctrl-C: the way to stop a camera watch
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_two_watchers_name_a_person_enrolled_while_they_run(cluster, broker, engines_dir, tmp_path):
    require_shared(LFW)
    url = cluster.create_database(f"fleet{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "FACESTYLE_ENGINES": str(engines_dir)}
    photo = str(LFW / "Colin_Powell" / f"Colin_Powell_{ENROLLED_PHOTO:04d}.jpg")
    other = str(LFW / "Tony_Blair" / "Tony_Blair_0094.jpg")
    # The gallery exists before the fleet starts, with someone else in it: Colin Powell is "unknown" at first.
    subprocess.run(facestyle("enroll", "--gallery", url, "tony", other), env=env, check=True, capture_output=True)
    events = Events(broker)
    videos = {camera: camera_video(tmp_path, camera, number) for camera, number in CAMERAS.items()}
    sources = set(videos.values())  # an event's "source" is the --source given
    watchers = []
    try:
        for camera, video in videos.items():
            log = Path(video).with_suffix(".log")
            with open(log, "wb") as stderr:
                watcher = subprocess.Popen(
                    facestyle("watch", "--source", video, "--gallery", url, "--mqtt", broker.url(f"{PREFIX}/{camera}"),
                              "--realtime", "--reembed-every", "4", "--quiet"),
                    env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            watcher.log = log
            watchers.append(watcher)
        seen = events.wait(lambda got: started(got) == sources, "a track on both cameras", watchers)
        assert not identified(seen, "colin")  # not enrolled yet: tracked, not named

        enrolment = time.monotonic()
        enrolled = subprocess.run(facestyle("enroll", "--json", "--gallery", url, "colin", photo), env=env,
                                  capture_output=True, text=True, timeout=WAIT_S)
        assert enrolled.returncode == 0, enrolled.stderr
        assert all(watcher.poll() is None for watcher in watchers)  # still the same processes: no restart

        named = events.wait(lambda got: identified(got, "colin") == sources, "'colin' named on both cameras", watchers)
        print(f"named on both cameras {time.monotonic() - enrolment:.1f} s after the enrolment started")
        assert "tony" not in {e["identity"] for e in named if e["event"] == "identified"}
        assert {e["source"] for e in named if e["event"] == "source_end"} == set()  # both videos still playing
    finally:
        for watcher in watchers:
            stop(watcher)
        events.stop()
