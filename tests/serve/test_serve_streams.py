"""Cameras in the service, over real sockets: streams started, listed, watched (JPEG, MJPEG, events), stopped."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest

from serve_helpers import *  # noqa: F403 (fixtures)
from serve_helpers import TOKEN, Server, httpx
from stream_videos import *  # noqa: F403 (fixtures)
from stream_videos import HEIGHT, WIDTH

WAIT_S = 300  # how long a test waits for what a stream must give at last (a bound, never a measure)


@pytest.fixture(scope="module")
def cameras(engines_dir, token_file, astronaut_walk, tmp_path_factory):
    """A server with a token, a gallery, the video watched from the start and room for one stream more."""
    gallery = tmp_path_factory.mktemp("cameras") / "people.db"
    s = Server(engines_dir, "--gallery", str(gallery), "--source", str(astronaut_walk), "--max-streams", "2",
               token_file=token_file)
    yield s
    assert s.stop() == 0


def until(find, what: str, state=lambda: None):
    """``find()``'s first true answer, asked again until WAIT_S has passed; ``state()`` explains a failure."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {WAIT_S} s: {state()}")


def sse_events(response, stop):
    """(kind, data) of each Server-Sent Event of ``response`` until ``stop(kind, data)`` says so."""
    seen, kind, data = [], None, []
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
        elif line == "" and data:
            seen.append((kind, json.loads("\n".join(data))))
            kind, data = None, []
            if stop(*seen[-1]):
                return seen
    raise AssertionError(f"the event stream ended; seen: {seen}")


def mjpeg_frames(response, count: int) -> list[bytes]:
    """The first ``count`` JPEGs of a multipart/x-mixed-replace answer, read by their Content-Length."""
    assert response.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
    buffer, frames = b"", []
    chunks = response.iter_bytes()
    while len(frames) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            buffer += next(chunks)
            continue
        head = buffer[:head_end].decode()
        assert head.startswith("--frame\r\nContent-Type: image/jpeg\r\n"), head
        length = int(head.rsplit("Content-Length: ", 1)[1])
        while len(buffer) < head_end + 4 + length + 2:
            buffer += next(chunks)
        frames.append(buffer[head_end + 4 : head_end + 4 + length])
        buffer = buffer[head_end + 4 + length + 2 :]
    return frames


def image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image.size


def test_a_source_of_the_command_line_is_watched_from_the_start(cameras):
    with cameras.client() as client:
        listed = until(lambda: [s for s in client.get("/v1/streams").json()["streams"] if s["frames"] > 0],
                       "frame of the --source stream", lambda: client.get("/v1/streams").json())
    (stream,) = listed
    assert stream["id"] == "1" and stream["name"] == "astronaut" and stream["reconnects"] == 0
    assert stream["state"] in ("running", "ended")


def test_a_posted_stream_names_the_enrolled_face_and_shows_its_frames(cameras, astronaut_walk, astronaut_photo):
    with cameras.client() as client:
        enrolled = client.post("/v1/enroll", files={"images": astronaut_photo.read_bytes()}, data={"name": "eileen"})
        assert enrolled.status_code == 200, enrolled.text
        started = client.post("/v1/streams", json={"source": str(astronaut_walk), "name": "front door"})
        assert started.status_code == 201, started.text
        stream = started.json()
        assert stream["name"] == "front door" and stream["state"] in ("starting", "running")
        listed = {s["id"]: s for s in client.get("/v1/streams").json()["streams"]}
        assert listed[stream["id"]]["name"] == "front door" and listed[stream["id"]]["source"] == str(astronaut_walk)

        # Events: the track starts, then it is named from the gallery; every event names its stream.
        mine = lambda kind, data: data.get("stream") == stream["id"]  # noqa: E731
        with client.stream("GET", "/v1/events", params={"replay": 200}) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            seen = sse_events(events, lambda kind, data: mine(kind, data) and kind == "identified")
        kinds = [kind for kind, data in seen if mine(kind, data)]
        assert kinds[0] == "stream_started" and "track_start" in kinds and kinds[-1] == "identified"
        identified = seen[-1][1]
        assert identified["identity"] == "eileen" and identified["name"] == "front door"
        assert identified["track"] == next(d["track"] for k, d in seen if mine(k, d) and k == "track_start")

        # Its newest frame, faces drawn, at the video's size; MJPEG gives frame after frame.
        frame = until(lambda: (r := client.get(f"/v1/streams/{stream['id']}/frame.jpg")).status_code == 200 and r,
                      "frame")
        assert frame.headers["content-type"] == "image/jpeg" and image_size(frame.content) == (WIDTH, HEIGHT)
        with client.stream("GET", f"/v1/streams/{stream['id']}/mjpeg", params={"fps": 10}) as mjpeg:
            parts = mjpeg_frames(mjpeg, 2)
        assert [image_size(part) for part in parts] == [(WIDTH, HEIGHT)] * 2

        # Stopped: gone from the list, its frame 404, and a second stop too.
        stopped = client.delete(f"/v1/streams/{stream['id']}")
        assert stopped.status_code == 200 and stopped.json()["stopped"] is True
        assert stream["id"] not in [s["id"] for s in client.get("/v1/streams").json()["streams"]]
        gone = client.get(f"/v1/streams/{stream['id']}/frame.jpg")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
        assert client.delete(f"/v1/streams/{stream['id']}").status_code == 404
        with client.stream("GET", "/v1/events", params={"replay": 200}) as events:
            sse_events(events, lambda kind, data: kind == "stream_stopped" and data["stream"] == stream["id"])


@pytest.mark.parametrize("path", ["/v1/streams", "/v1/events", "/v1/streams/1/frame.jpg", "/v1/streams/1/mjpeg"])
def test_every_stream_endpoint_wants_the_token(cameras, path):
    answer = httpx.get(cameras.url + path, timeout=30)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    wrong = httpx.get(cameras.url + path, headers={"Authorization": "Bearer not-" + TOKEN}, timeout=30)
    assert wrong.status_code == 401 and "wrong token" in wrong.json()["error"]["message"]
    assert httpx.post(cameras.url + "/v1/streams", json={"source": "0"}, timeout=30).status_code == 401
    assert httpx.delete(cameras.url + "/v1/streams/1", timeout=30).status_code == 401


def test_bad_sources_and_options_are_refused_with_a_typed_message(cameras, astronaut_walk, tmp_path):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    with cameras.client() as client:
        cases = [({"source": str(tmp_path / "absent.mp4")}, 422, "bad_input", "absent.mp4: no such file"),
                 ({"source": str(not_video)}, 422, "bad_input", "notes.mp4: cannot be opened"),
                 ({"name": "door"}, 422, "malformed_request", "source: expected one text value"),
                 ({"source": str(astronaut_walk), "every": 0}, 422, "bad_input", "every 0: expected a whole number"),
                 ({"source": str(astronaut_walk), "fps": 3}, 422, "malformed_request", "unknown option 'fps'"),
                 ({"source": str(astronaut_walk), "name": " "}, 422, "malformed_request", "name ' ': expected a text")]
        for body, status, code, message in cases:
            answer = client.post("/v1/streams", json=body)
            error = answer.json()["error"]
            assert (answer.status_code, error["code"]) == (status, code), answer.text
            assert message in error["message"], error
        assert client.get("/v1/streams/77/frame.jpg").status_code == 404
        assert client.get("/v1/streams/77/mjpeg").status_code == 404
        assert client.get("/v1/events", headers={"Last-Event-ID": "x"}).status_code == 422


def test_streams_beyond_the_limit_are_refused(cameras, astronaut_walk):
    with cameras.client() as client:
        running = len(client.get("/v1/streams").json()["streams"])  # the --source stream
        extra = [client.post("/v1/streams", json={"source": str(astronaut_walk)}) for _ in range(3 - running)]
        assert [a.status_code for a in extra] == [201] * (2 - running) + [429]
        assert extra[-1].json()["error"] == {
            "code": "limit_reached", "input": "source",
            "message": "2 streams are running, the most this server takes (--max-streams); stop one first"}
        for answer in extra[:-1]:
            assert client.delete(f"/v1/streams/{answer.json()['id']}").status_code == 200


@pytest.fixture
def rtsp_camera(astronaut_photo, tmp_path):
    """GStreamer's RTSP server (tests/rtsp_server.py, run by Debian's Python) showing the astronaut, 320x240."""
    import subprocess
    from pathlib import Path

    from facestyle.images import encode_image, load_image

    system_python = Path("/usr/bin/python3")
    if not system_python.exists():
        pytest.skip(f"no {system_python} for GStreamer's RTSP server")
    still = tmp_path / "astronaut.png"
    still.write_bytes(encode_image(load_image(astronaut_photo)[20 : 20 + HEIGHT, 100 : 100 + WIDTH], "PNG"))
    server = Path(__file__).parents[1] / "rtsp_server.py"
    process = subprocess.Popen([str(system_python), str(server), "--port", "0", "--image", str(still)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("serving rtsp://"):
        process.kill()
        why = process.communicate(timeout=30)[1]
        pytest.skip(f"GStreamer's RTSP server cannot serve here: {why.strip()[-300:]}")
    yield line.split()[1]
    process.kill()
    process.wait(30)


def test_an_rtsp_camera_is_watched_and_shown(cameras, rtsp_camera):
    with cameras.client() as client:
        started = client.post("/v1/streams", json={"source": rtsp_camera, "name": "gate"})
        assert started.status_code == 201, started.text
        stream_id = started.json()["id"]
        frame = until(lambda: (r := client.get(f"/v1/streams/{stream_id}/frame.jpg")).status_code == 200 and r,
                      "frame of the RTSP camera", lambda: client.get("/v1/streams").json())
        assert image_size(frame.content) == (WIDTH, HEIGHT)
        (listed,) = [s for s in client.get("/v1/streams").json()["streams"] if s["id"] == stream_id]
        assert listed["source"] == rtsp_camera and listed["state"] == "running" and listed["faces"] == 1
        assert client.delete(f"/v1/streams/{stream_id}").status_code == 200


def test_a_slow_subscriber_loses_its_oldest_events_and_is_told_how_many():
    from facestyle.serve.streams import StreamHub

    async def publish_five():
        hub = StreamHub(service=None, queue_size=3)
        hub.open(asyncio.get_running_loop())
        slow, backlog = hub.subscribe()
        for number in range(5):
            hub.publish("track_start", {"track": number})
        await asyncio.sleep(0)  # the loop delivers what the threads published
        late, late_backlog = hub.subscribe(replay=2)
        after, resumed = hub.subscribe(after=late_backlog[0].id)
        taken = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        return backlog, slow.take_dropped(), taken, late_backlog, resumed, slow.take_dropped()

    backlog, dropped, taken, late_backlog, resumed, dropped_again = asyncio.run(publish_five())
    assert backlog == [] and dropped == 2 and dropped_again == 0
    assert [item.data["track"] for item in taken] == [2, 3, 4]
    assert [item.data["track"] for item in late_backlog] == [3, 4]
    assert [item.data["track"] for item in resumed] == [4]


def test_shutdown_ends_the_event_and_mjpeg_answers(engines_dir, astronaut_walk):
    """SIGTERM drains: the followers of events and frames are answered to the end, so the server exits 0 long
    before --drain-timeout (which the stop here never waits for)."""
    import threading

    server = Server(engines_dir, "--source", str(astronaut_walk), "--drain-timeout", "600")
    connected = {path: threading.Event() for path in ("/v1/events", "/v1/streams/1/mjpeg")}
    ended = set()

    def follow(path):
        with httpx.stream("GET", server.url + path, timeout=120) as answer:
            for _ in answer.iter_bytes():
                connected[path].set()
        ended.add(path)

    try:
        until(lambda: httpx.get(server.url + "/v1/streams/1/frame.jpg", timeout=30).status_code == 200, "frame")
        followers = [threading.Thread(target=follow, args=(path,), daemon=True) for path in connected]
        for follower in followers:
            follower.start()
        for path, event in connected.items():
            assert event.wait(WAIT_S), f"{path}: nothing received"
        assert server.stop(timeout=60) == 0
    finally:
        server.stop()
    for follower in followers:
        follower.join(30)
    assert ended == set(connected)
    assert "draining (2 request(s) in flight)" in "".join(server.lines) + server.process.stdout.read()
