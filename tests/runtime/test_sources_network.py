"""Network sources read for real: an RTSP server (GStreamer's, tests/rtsp_server.py, run by the system Python) and
an HTTP server on 127.0.0.1. A lost stream (the server killed, paused, or never there) is reopened after growing
delays while the other sources go on.
"""

import functools
import json
import signal
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from facestyle.errors import BadInputError
from facestyle.streams import EVENTS, Event, FrameResult, Sources, watch
from facestyle.streams.sources import Reconnect
from facestyle.video import Frame, open_source, source_name

cv2 = pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed: pip install 'facestyle[video]'")

SERVER = Path(__file__).parents[1] / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where python3-gst-1.0 and gir1.2-gst-rtsp-server-1.0 install gi
APT = "apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 gstreamer1.0-plugins-ugly"
FAST = Reconnect(stall_timeout_s=3.0, first_delay_s=0.2, max_delay_s=1.0)


@functools.cache
def _rtsp_missing() -> str | None:
    """Why GStreamer's RTSP server cannot run here, or None."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"no {SYSTEM_PYTHON} for GStreamer's RTSP server ({APT})"
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer's RTSP server is not importable by {SYSTEM_PYTHON} ({last}): {APT}"
    return None


class RtspServer:
    """tests/rtsp_server.py as a subprocess: started on a free port, killed, paused, restarted on the same port."""

    def __init__(self, log: Path, image: Path | None = None):
        self.log, self.image, self.port, self.url, self.process = log, image, 0, None, None

    def start(self) -> None:
        image = ["--image", str(self.image)] if self.image else []
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), *image],
                                            stdout=subprocess.PIPE, stderr=log, text=True)
        line = self._first_line(timeout=30)
        if self.process.poll() == 3:  # rtsp_server.MISSING: an element of its pipeline is not installed
            pytest.skip(f"GStreamer's RTSP server cannot serve: {self.log.read_text().strip()}")
        assert line.startswith("serving rtsp://"), f"the RTSP server did not start: {self.log.read_text()}"
        self.url = line.split()[1]
        self.port = int(self.url.split(":")[2].split("/")[0])  # a restart listens on the same port

    def _first_line(self, timeout: float) -> str:
        lines = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        return lines[0] if lines else ""

    def kill(self) -> None:
        self.process.send_signal(signal.SIGCONT)  # a paused server is killed too
        self.process.kill()
        self.process.wait(timeout=30)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def _rtsp_server(tmp_path, image=None):
    if reason := _rtsp_missing():
        pytest.skip(reason)
    server = RtspServer(tmp_path / "rtsp-server.log", image)
    server.start()
    return server


@pytest.fixture
def rtsp(tmp_path):
    """GStreamer's RTSP server on 127.0.0.1 serving a moving test pattern (320x240, 15 fps, H.264)."""
    server = _rtsp_server(tmp_path)
    yield server
    server.kill()


def write_video(path, count, fps=15.0, size=(64, 48), step=2):
    """``count`` frames, frame i a flat grey of level ``step`` i (mod 256)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(count):
        writer.write(np.full((size[1], size[0], 3), (step * i) % 256, np.uint8))
    writer.release()
    return path


def items_of(sources, seconds: float):
    """(reader, Frame | Event | None) as the ticks hand them out; the sources are closed after ``seconds``, which
    ends the ticks, so a test that waits for what never comes fails instead of hanging."""
    timer = threading.Timer(seconds, sources.close)
    timer.daemon = True
    timer.start()
    try:
        for tick in sources.ticks():
            yield from tick
    finally:
        timer.cancel()


def events_of(items, name) -> list[Event]:
    return [item for reader, item in items if reader.name == name and isinstance(item, Event)]


def frames_of(items, name) -> list[Frame]:
    return [item for reader, item in items if reader.name == name and isinstance(item, Frame)]


def test_the_connection_events_are_events():
    assert {"source_lost", "reconnected"} <= set(EVENTS)
    with pytest.raises(BadInputError, match=r"stall_timeout_s 0: expected a number of seconds > 0"):
        Reconnect(stall_timeout_s=0)
    assert [d for d, _ in zip(Reconnect(first_delay_s=0.5, max_delay_s=30).delays(), range(9))] == [
        0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_an_rtsp_url_is_read(rtsp):
    with open_source(rtsp.url, read_timeout_s=3, open_timeout_s=10) as stream:
        assert (stream.live, stream.width, stream.height, stream.frame_count) == (True, 320, 240, None)
    with Sources([rtsp.url], reconnect=FAST) as sources:
        items = []
        for reader, item in items_of(sources, 20):
            items.append((reader, item))
            if len(frames_of(items, rtsp.url)) == 20:
                break
    frames = frames_of(items, rtsp.url)
    assert len(frames) == 20 and sources.readers[0].frames >= 20
    assert all(f.pixels.shape == (240, 320, 3) and f.pixels.dtype == np.uint8 for f in frames)
    assert all(b.index > a.index and b.time_s >= a.time_s for a, b in zip(frames, frames[1:]))
    assert events_of(items, rtsp.url) == [] and sources.readers[0].reconnects == 0


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_an_http_url_is_read_and_reopened_when_it_ends(tmp_path):
    write_video(tmp_path / "clip.mp4", count=12, step=20)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/clip.mp4"
    try:
        with Sources([url], reconnect=Reconnect(first_delay_s=0.05)) as sources:
            items = []
            for reader, item in items_of(sources, 20):
                items.append((reader, item))
                if sources.readers[0].reconnects == 2:
                    break
    finally:
        server.shutdown()
        server.server_close()
    reader = sources.readers[0]
    assert reader.frames >= 24  # the 12 frames, then again from the start, twice
    lost = [e for e in events_of(items, url) if e.event == "source_lost"]
    assert len(lost) >= 2 and lost[0].error == f"{url}: the stream ended" and lost[0].track is None
    assert [e.event for e in events_of(items, url)][:4] == ["source_lost", "reconnected"] * 2
    levels = [int(f.pixels[0, 0, 0]) for f in frames_of(items, url)]  # the clip's grey ramp (a late frame dropped)
    assert all(min(abs(level - 20 * i) for i in range(12)) <= 4 for level in levels) and len(set(levels)) >= 3


def test_a_killed_server_is_reconnected_while_a_file_goes_on(rtsp, tmp_path):
    video = str(write_video(tmp_path / "door.mp4", count=450))  # 30 s at 15 fps, paced: it outlasts the test
    items, after = [], 0
    with Sources([rtsp.url, video], realtime=True, reconnect=FAST) as sources:
        for reader, item in items_of(sources, 40):
            items.append((reader, item))
            if reader.name != rtsp.url:
                continue
            if isinstance(item, Frame) and len(frames_of(items, rtsp.url)) == 10:
                rtsp.kill()
            elif isinstance(item, Event) and item.event == "source_lost":
                rtsp.start()
            elif isinstance(item, Frame) and events_of(items, rtsp.url):
                after += 1
                if after == 10:
                    break
    events = events_of(items, rtsp.url)
    assert [e.event for e in events] == ["source_lost", "reconnected"], [e.to_json() for e in events]
    assert events[0].error in (f"{rtsp.url}: the stream ended", f"{rtsp.url}: no frame for 3 s")
    assert after == 10 and sources.readers[0].reconnects == 1
    frames = frames_of(items, rtsp.url)
    assert all(b.index > a.index for a, b in zip(frames, frames[1:]))  # one index across the reconnection
    names = [(reader.name, item.event if isinstance(item, Event) else "frame") for reader, item in items]
    outage = names[names.index((rtsp.url, "source_lost")):names.index((rtsp.url, "reconnected"))]
    assert (video, "frame") in outage  # the file went on while the camera was away
    assert sources.readers[1].error is None


def test_a_stalled_server_is_lost_within_the_stall_timeout(rtsp):
    items, paused_at, lost_after, after = [], None, None, 0
    with Sources([rtsp.url], reconnect=Reconnect(stall_timeout_s=2.0, first_delay_s=0.2, max_delay_s=1.0)) as sources:
        for reader, item in items_of(sources, 40):
            items.append((reader, item))
            if isinstance(item, Frame) and paused_at is None and len(frames_of(items, rtsp.url)) == 10:
                rtsp.pause()
                paused_at = time.monotonic()
            elif isinstance(item, Event) and item.event == "source_lost":
                lost_after = time.monotonic() - paused_at
                rtsp.resume()
            elif isinstance(item, Frame) and lost_after is not None:
                after += 1
                if after == 5:
                    break
    events = events_of(items, rtsp.url)
    assert events and events[0].event == "source_lost", [e.to_json() for e in events]
    assert events[0].error == f"{rtsp.url}: no frame for 2 s"
    assert lost_after < 2.0 + 8.0  # the stall timeout and a generous margin: the read did not block for good
    assert [e.event for e in events] == ["source_lost", "reconnected"] and after == 5


def test_a_url_that_never_opens_is_retried_with_growing_delays_until_stopped():
    with socket_bound() as port:  # a port that is ours and not listening: every connection is refused
        url = f"rtsp://127.0.0.1:{port}/none"
        sources = Sources([url], reconnect=Reconnect(stall_timeout_s=2.0, first_delay_s=0.05, max_delay_s=0.4))
        with sources:
            reader = sources.readers[0]
            deadline = time.monotonic() + 30
            while len(reader.delays) < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not reader.done  # still retrying
        assert reader.done  # stopped by leaving the block
        items = [pair for tick in sources.ticks() for pair in tick]
    assert list(reader.delays)[:6] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
    lost = events_of(items, url)
    assert [e.event for e in lost] == ["source_lost"]  # one loss, however many attempts
    assert lost[0].error.startswith(f"{url}: cannot be opened") and reader.reconnects == reader.frames == 0


def test_a_url_is_named_without_its_password():
    with socket_bound() as port:
        with Sources([f"rtsp://viewer:secret@127.0.0.1:{port}/live?channel=1"]) as sources:
            reader, item = next(items_of(sources, 20))  # the source lost, as nothing listens there
    assert reader.name == f"rtsp://viewer:***@127.0.0.1:{port}/live?channel=1"
    assert item.event == "source_lost" and item.source == reader.name
    assert item.error.startswith(f"{reader.name}: cannot be opened") and "secret" not in item.error
    assert source_name(f"http://127.0.0.1:{port}/a.mp4") == f"http://127.0.0.1:{port}/a.mp4"
    assert source_name("rtsp://viewer@cam/stream") == "rtsp://viewer@cam/stream"  # no password to hide


class socket_bound:
    """A TCP port on 127.0.0.1 held (bound, not listening) for the block."""

    def __enter__(self) -> int:
        import socket

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        return self.socket.getsockname()[1]

    def __exit__(self, *exc):
        self.socket.close()


# -- the watch over a network camera -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyzer(engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer

    return FaceAnalyzer.from_engines(engines_dir)


@pytest.fixture
def astronaut_camera(tmp_path):
    """The RTSP server showing the astronaut photo (her face ~80 px), still, at 320x240."""
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    photo = load_image(skimage_data_dir() / "astronaut.png")[20:260, 100:420]
    cv2.imwrite(str(tmp_path / "astronaut.png"), cv2.cvtColor(np.ascontiguousarray(photo), cv2.COLOR_RGB2BGR))
    server = _rtsp_server(tmp_path, tmp_path / "astronaut.png")
    yield server
    server.kill()


def test_a_watched_camera_that_drops_ends_its_tracks_and_comes_back(analyzer, astronaut_camera):
    camera = astronaut_camera
    stream_watch = watch([camera.url], analyzer, stall_timeout=3.0)
    timer = threading.Timer(40, stream_watch._sources.close)  # a test that waits in vain fails instead of hanging
    timer.start()
    lines, faces_after = [], 0
    try:
        for item in stream_watch:
            lines.append(item.to_json())
            if isinstance(item, FrameResult) and len(lines) == 10:
                camera.kill()
            elif isinstance(item, Event) and item.event == "source_lost":
                camera.start()
            elif isinstance(item, FrameResult) and any(line.get("event") == "reconnected" for line in lines):
                faces_after += len(item.faces)
                if faces_after >= 5:
                    break
    finally:
        timer.cancel()
    events = [(line["event"], line["track"]) for line in lines if "event" in line]
    lost = events.index(("source_lost", None))
    assert events[:1] == [("track_start", 1)] and events[lost - 1] == ("track_end", 1)  # ended at the loss
    assert events[lost + 1] == ("reconnected", None) and events[lost + 2] == ("track_start", 2)
    for line in lines:
        if line.get("event") in ("source_lost", "reconnected"):
            assert "faces" not in line and line["source"] == camera.url
    assert stream_watch.summary()["sources"][0]["reconnects"] == 1


def test_the_command_line_watches_an_rtsp_camera(engines_dir, rtsp, capsys):
    from facestyle.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["watch", "--source", rtsp.url, "--stall-timeout", "0", "--engines", str(engines_dir)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "facestyle watch: error: --stall-timeout: must be > 0, got 0\n"
    assert main(["watch", "--source", rtsp.url, "--stall-timeout", "3", "--max-frames", "5",
                 "--engines", str(engines_dir), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    source = summary["sources"][0]
    assert (source["source"], source["frames"], source["reconnects"]) == (rtsp.url, 5, 0) and "error" not in source
