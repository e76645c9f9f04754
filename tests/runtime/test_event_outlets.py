"""A watch's events sent on: a webhook receiver run here (http.server on 127.0.0.1) and a real Mosquitto broker
(tests/mosquitto.py), stopped and started again mid-run. Every event ends counted sent, dropped or failed, and
what is counted sent is what arrived."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import mosquitto
from facestyle.errors import BadInputError
from facestyle.streams import Event
from facestyle.streams.outlets import EventOutlets, Mqtt, Webhook, open_outlets
from facestyle.streams.outlets.payload import topic_safe
from facestyle.triton.local import free_port

WAIT_S = 30  # the most any delivery is waited for; none is timed


def event(kind: str, track: int | None, source: str = "door.mp4", identity: str | None = "unknown") -> Event:
    return Event(kind, source, track, identity, float(track or 0))


# -- a webhook receiver --------------------------------------------------------------------------
class Receiver:
    """Answers POSTs with ``statuses`` in turn (then 200); while ``hold`` is clear, holds each request."""

    def __init__(self, statuses=()):
        self.statuses, self.bodies, self.authorization, self.requests = list(statuses), [], [], 0
        self.hold, self.holding = threading.Event(), threading.Event()
        self.hold.set()
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.holding.set()
                receiver.hold.wait(WAIT_S)
                with receiver.changed:
                    receiver.requests += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status == 200:
                        receiver.bodies.append((self.headers["Content-Type"], json.loads(body)))
                        receiver.authorization.append(self.headers["Authorization"])
                    receiver.changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        with self.changed:
            return [body for _, body in self.bodies]


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.hold.set()
        r.server.shutdown()
        r.server.server_close()


def dead_url() -> str:
    """A port nothing listens on: connections are refused."""
    return f"http://127.0.0.1:{free_port()}/hook"


def test_webhook_posts_each_event_as_json_in_order(receiver):
    r = receiver()
    with Webhook(r.url) as hook:
        for e in (event("track_start", 1), event("identified", 1, identity="ada"),
                  event("track_end", 1, identity="ada"), event("track_start", 2, "rtsp://admin:secret@cam1/live")):
            hook.send(e)
    assert hook.counts() == {"sent": 4, "dropped": 0, "failed": 0, "queued": 0}
    assert [b for b in r.events()][:3] == [
        {"event": "track_start", "source": "door.mp4", "track": 1, "identity": "unknown", "time_s": 1.0},
        {"event": "identified", "source": "door.mp4", "track": 1, "identity": "ada", "time_s": 1.0},
        {"event": "track_end", "source": "door.mp4", "track": 1, "identity": "ada", "time_s": 1.0}]
    assert r.events()[3]["source"] == "rtsp://admin:***@cam1/live"  # the camera's password stays home
    assert {content_type for content_type, _ in r.bodies} == {"application/json"}


def test_webhook_logs_in_with_the_urls_user_and_hides_the_password(receiver):
    import base64

    r = receiver()
    login = r.url.replace("http://", "http://door:s%40cret@")
    with Webhook(login) as hook:
        hook.send(event("track_start", 1))
    assert hook.name == "webhook " + r.url.replace("http://", "http://door:***@")
    assert r.authorization == ["Basic " + base64.b64encode(b"door:s@cret").decode()]


def test_mqtt_hides_the_password_of_its_url():
    outlet = Mqtt("mqtt://door:secret@127.0.0.1:9/home", reconnect=(0.1, 0.5))
    assert outlet.close(0) == {"sent": 0, "dropped": 0, "failed": 0, "queued": 0}
    assert outlet.name == "mqtt mqtt://door:***@127.0.0.1:9/home"


def test_webhook_tries_again_after_503s(receiver):
    r = receiver(statuses=[503, 503])
    with Webhook(r.url, backoff=0.01) as hook:
        hook.send(event("track_start", 7))
    assert hook.counts()["sent"] == 1 and hook.counts()["failed"] == 0
    assert r.requests == 3 and [e["track"] for e in r.events()] == [7]


def test_webhook_does_not_retry_a_refusal(receiver):
    r = receiver(statuses=[404])
    with Webhook(r.url, backoff=0.01) as hook:
        hook.send(event("track_start", 7))
    assert hook.counts() == {"sent": 0, "dropped": 0, "failed": 1, "queued": 0}
    assert r.requests == 1


def test_webhook_never_holds_up_the_caller_and_drops_the_oldest(receiver):
    """The receiver holds the first request: the sends after it return anyway, beyond the queue's 3 the oldest
    are dropped and counted, and once the receiver answers the newest 3 arrive."""
    r = receiver()
    r.hold.clear()
    hook = Webhook(r.url, queue_size=3, timeout=WAIT_S)
    hook.send(event("track_start", 1))
    assert r.holding.wait(WAIT_S)
    for track in range(2, 12):
        hook.send(event("track_start", track))  # returns although the outlet's one request is still held
    assert r.requests == 0 and r.hold.is_set() is False  # all ten sends returned while the request was held
    assert hook.counts() == {"sent": 0, "dropped": 7, "failed": 0, "queued": 4}
    r.hold.set()
    assert hook.close(WAIT_S) == {"sent": 4, "dropped": 7, "failed": 0, "queued": 0}
    assert [e["track"] for e in r.events()] == [1, 9, 10, 11]


def test_a_dead_webhook_counts_every_event():
    hook = Webhook(dead_url(), queue_size=2, retries=2, backoff=0.01)
    for track in range(10):
        hook.send(event("track_start", track))
    counts = hook.close(WAIT_S)
    assert counts["sent"] == 0 and counts["failed"] >= 1 and counts["dropped"] >= 1
    assert counts["sent"] + counts["dropped"] + counts["failed"] == 10 and counts["queued"] == 0


# -- MQTT --------------------------------------------------------------------------------------
@pytest.fixture
def broker():
    yield from mosquitto.started("the MQTT outlet tests")


def parsed(payload: bytes):
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode()  # <prefix>/status: online or offline


class Subscriber:
    """A paho client collecting what arrives on ``topic``; ``persistent``: it outlives a broker restart."""

    def __init__(self, broker, topic: str, persistent: bool = False):
        import paho.mqtt.client as paho

        self.messages, self.changed = [], threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-{id(self)}" if persistent else "",
                                  clean_session=not persistent, protocol=paho.MQTTv311)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._note("subscribed")
        self.client.on_message = lambda client, userdata, m: self._note((m.topic, parsed(m.payload), m.retain))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.wait(lambda got: "subscribed" in got)

    def _note(self, item) -> None:
        with self.changed:
            self.messages.append(item)
            self.changed.notify_all()

    def wait(self, done) -> list:
        with self.changed:
            assert self.changed.wait_for(lambda: done(self.messages), WAIT_S), self.messages
            return list(self.messages)

    def on(self, suffix: str) -> list:
        with self.changed:
            return [(t, p) for t, p, _ in (m for m in self.messages if m != "subscribed") if t.endswith(suffix)]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_events_and_the_retained_present(broker):
    watcher = Subscriber(broker, "home/faces/#")
    camera = "rtsp://admin:secret@cam1:554/live"
    sent = [event("track_start", 1), event("identified", 1, identity="ada"), event("track_start", 3),
            event("track_start", 2, camera), event("track_end", 1, identity="ada")]
    with Mqtt(broker.url("home/faces"), reconnect=(0.1, 0.5)) as outlet:
        for e in sent:
            outlet.send(e)
    assert outlet.counts() == {"sent": 5, "dropped": 0, "failed": 0, "queued": 0}
    watcher.wait(lambda got: len([m for m in got if m != "subscribed" and m[0].endswith("/events")]) == 5)
    door = [p for t, p in watcher.on("/events") if t == "home/faces/door.mp4/events"]
    assert [(p["event"], p["track"], p["identity"]) for p in door] == [
        ("track_start", 1, "unknown"), ("identified", 1, "ada"), ("track_start", 3, "unknown"), ("track_end", 1, "ada")]
    assert [p["source"] for t, p in watcher.on("/events") if t == "home/faces/rtsp_cam1_554_live/events"] == [
        "rtsp://admin:***@cam1:554/live"]
    watcher.wait(lambda got: [m[1] for m in got if m != "subscribed" and m[0] == "home/faces/status"] == [
        "online", "offline"])  # connected, then closed
    watcher.stop()

    late = Subscriber(broker, "home/faces/#")  # subscribes after everything was published
    got = late.wait(lambda got: len(got) == 4)
    late.stop()
    assert {t: (p, retained) for t, p, retained in got[1:]} == {
        "home/faces/door.mp4/present": ([{"track": 3, "identity": "unknown"}], True),
        "home/faces/rtsp_cam1_554_live/present": ([{"track": 2, "identity": "unknown"}], True),
        "home/faces/status": ("offline", True)}


def tracks(got) -> set[int]:
    return {message[1]["track"] for message in got if message != "subscribed"}


@pytest.mark.parametrize("queue_size", [1000, 2])
def test_mqtt_through_a_broker_restart_loses_nothing_silently(broker, queue_size):
    """Events sent while the broker is down arrive after it is back, or, beyond the queue, are counted dropped."""
    watcher = Subscriber(broker, "facestyle/+/events", persistent=True)
    outlet = Mqtt(broker.url(), queue_size=queue_size, reconnect=(0.1, 0.5))
    for track in range(1, 6):  # one at a time: a queue of 2 holds them all while the outlet connects
        outlet.send(event("track_start", track))
        watcher.wait(lambda got, track=track: track in tracks(got))
    broker.kill()
    for track in range(6, 11):
        outlet.send(event("track_start", track))  # queued while the broker is away
    assert outlet.counts()["sent"] <= 5 + 1
    broker.start()
    counts = outlet.close(WAIT_S)
    assert counts["sent"] + counts["dropped"] == 10 and counts["failed"] == 0 and counts["queued"] == 0
    assert counts["dropped"] == 0 if queue_size == 1000 else counts["dropped"] >= 2  # 5 sent into a queue of 2
    got = watcher.wait(lambda got: len(tracks(got)) == counts["sent"])  # at least once: duplicates allowed
    watcher.stop()
    assert len(tracks(got)) == counts["sent"]
    assert tracks(got) >= {*range(1, 6), 10}  # the newest is never the one dropped


# -- bad URLs and the command line ---------------------------------------------------------------
@pytest.mark.parametrize("webhooks, mqtt, match", [
    (["ftp://hub/hook"], [], r"webhook URL 'ftp://hub/hook': expected http://"),
    (["http://"], [], r"webhook URL 'http://': expected http://"),
    (["http://hub:99999/x"], [], r"webhook URL 'http://hub:99999/x': Port out of range"),
    ([], ["tcp://broker/home"], r"MQTT URL 'tcp://broker/home': expected mqtt://"),
    ([], ["mqtt://broker/home/+/x"], r"MQTT URL 'mqtt://broker/home/\+/x': the prefix 'home/\+/x' must be topic"),
    ([], ["mqtt://broker:0x1/home"], r"MQTT URL 'mqtt://broker:0x1/home': .*expected mqtt://"),
])
def test_bad_urls_are_refused_naming_them(webhooks, mqtt, match):
    with pytest.raises(BadInputError, match=match):
        open_outlets(webhooks, mqtt)


def test_queue_size_is_checked():
    with pytest.raises(BadInputError, match="queue_size 0: expected a whole number of at least 1"):
        Webhook("http://127.0.0.1:1/hook", queue_size=0)


def test_watch_refuses_a_bad_mqtt_url_before_the_models_load(tmp_path):
    done = subprocess.run([sys.executable, "-m", "facestyle.cli", "watch", "--source", "rtsp://127.0.0.1:1/none",
                           "--engines", str(tmp_path / "no-engines"), "--mqtt", "mqtt://broker/a/#"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "facestyle watch: error: MQTT URL 'mqtt://broker/a/#': the prefix 'a/#' must be topic levels without + # ? "
        "or empty levels"]


def test_event_outlets_relay_sends_only_events(receiver):
    from facestyle.streams import FrameResult

    r = receiver()
    items = [event("track_start", 1), FrameResult("door.mp4", 0, 0.0, []), event("track_end", 1)]
    with EventOutlets([Webhook(r.url)]) as outlets:
        assert list(outlets.relay(items)) == items
    assert outlets.counts() == [{"outlet": f"webhook {r.url}", "sent": 2, "dropped": 0, "failed": 0, "queued": 0}]
    assert [e["event"] for e in r.events()] == ["track_start", "track_end"]


# -- event chips -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def astronaut():
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    return load_image(skimage_data_dir() / "astronaut.png")


def decode_chip(text: str):
    import base64
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(text)))
    return image.format, np.asarray(image.convert("RGB"))


def test_event_chips_carry_the_best_face_so_far(receiver, astronaut):
    """track_start (held until its frame) gets the track's first face, identified and track_end the larger one
    seen after; each chip is the box with a quarter of its side all round, as a JPEG."""
    from facestyle.streams import FrameResult, TrackedFace

    small, large = (180, 60, 220, 100), (160, 40, 260, 140)
    items = [event("track_start", 1), FrameResult("door.mp4", 0, 0.0, [TrackedFace(1, small, "unknown", None)], astronaut),
             event("identified", 1, identity="ada"),
             FrameResult("door.mp4", 1, 0.1, [TrackedFace(1, large, "ada", 0.3)], astronaut),
             event("track_end", 1, identity="ada"), event("source_end", None, identity=None)]
    r = receiver()
    with EventOutlets([Webhook(r.url)], chips=True) as outlets:
        for item in items:
            outlets(item)
    got = r.events()
    assert [e["event"] for e in got] == ["track_start", "identified", "track_end", "source_end"]
    assert "chip" not in got[3]
    chips = [decode_chip(e["chip"]) for e in got[:3]]
    assert [(kind, chip.shape) for kind, chip in chips] == [("JPEG", (61, 61, 3)), ("JPEG", (151, 151, 3)),
                                                            ("JPEG", (151, 151, 3))]
    assert np.abs(chips[0][1].astype(float) - astronaut[50:111, 170:231]).mean() < 8  # the face it names
    assert np.abs(chips[1][1].astype(float) - astronaut[15:166, 135:286]).mean() < 8


def test_event_chips_need_the_frames(receiver):
    from facestyle.streams import FrameResult, TrackedFace

    outlets = EventOutlets([Webhook(receiver().url)], chips=True)
    outlets(event("track_start", 1))
    with pytest.raises(BadInputError, match=r"event chips of door.mp4: the frames are needed, .*keep_pixels=True"):
        outlets(FrameResult("door.mp4", 0, 0.0, [TrackedFace(1, (0, 0, 9, 9), "unknown", None)]))
    outlets.close()


def test_watch_sends_its_events_to_a_webhook_and_a_broker(engines_dir, receiver, broker, tmp_path, capsys):
    """`facestyle watch` on a real video: the events of its JSON lines, each to the webhook and to the broker
    with its track's face (--event-chips), and the counts in its summary."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed")
    from facestyle.cli import main
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    photo = load_image(skimage_data_dir() / "astronaut.png")
    video = tmp_path / "door.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (320, 240))
    for i in range(6):  # a slow pan: the astronaut's face in every frame
        writer.write(cv2.cvtColor(np.ascontiguousarray(photo[20:260, 100 + 4 * i : 420 + 4 * i]), cv2.COLOR_RGB2BGR))
    writer.release()
    r, watcher = receiver(), Subscriber(broker, "cams/#")
    lines = tmp_path / "lines.jsonl"
    assert main(["watch", "--source", str(video), "--engines", str(engines_dir), "--json-lines", str(lines),
                 "--webhook", r.url, "--mqtt", broker.url("cams"), "--event-chips", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    events = [e for e in map(json.loads, lines.read_text().splitlines()) if "event" in e]
    assert [e["event"] for e in events] == ["track_start", "track_end", "source_end"]
    assert summary["outlets"] == [
        {"outlet": f"webhook {r.url}", "sent": 3, "dropped": 0, "failed": 0, "queued": 0},
        {"outlet": f"mqtt {broker.url('cams')}", "sent": 3, "dropped": 0, "failed": 0, "queued": 0}]
    received = r.events()
    assert [decode_chip(e["chip"])[0] for e in received[:2]] == ["JPEG", "JPEG"]  # track_start, track_end
    assert [without_chip(e) for e in received] == events  # source_end has none
    got = watcher.wait(lambda got: len([m for m in got if m != "subscribed" and m[0].endswith("/events")]) == 3)
    watcher.stop()
    published = [p for t, p, _ in got[1:] if t == f"cams/{topic_safe(str(video))}/events"]
    assert [without_chip(e) for e in published] == events
    assert [e.get("chip") for e in published] == [e.get("chip") for e in received]


def without_chip(event: dict) -> dict:
    return {k: v for k, v in event.items() if k != "chip"}
