"""Streams soak: `facestyle watch` on two RTSP cameras for minutes, sending every event to an MQTT broker and a
webhook, while the RTSP server is killed and started again and the broker is restarted; then every event counted.

Two cameras: GStreamer's RTSP server (tests/rtsp_server.py, run by the system Python) serves two face videos on
127.0.0.1, each a scene of :mod:`streams` (LFW people walking through a BSDS500 photo, 960x540) looped at 15 fps.
The scenes' people are enrolled in a gallery, so the events include ``identified``. A Mosquitto broker
(tests/mosquitto.py, persistence on) runs on a free port; this script subscribes to ``<prefix>/+/events`` itself
(QoS 1, clean_session False: the broker keeps its subscription and what it holds for it across a restart) and runs a
webhook receiver. `facestyle watch` runs as a subprocess, the real CLI, with ``--mqtt`` and ``--webhook``.

After a warm-up the faults come evenly spread: the RTSP server killed (SIGKILL) and started again on the same
port after ``--down-seconds``, and the broker stopped (SIGTERM, as a service manager does) and started again.
At the end watch gets Ctrl-C (SIGINT) and prints its summary: each outlet's sent, dropped and failed events,
each source's reconnects. The report adds what the subscriber and the receiver got, and the RSS of the watch
process (``/proc/<pid>/status`` VmRSS) sampled every few seconds: at the end of the warm-up, at the end, and
whether the end stayed within ``--rss-bound-mb`` of the start.

    python benchmarks/streams_soak.py --engines DIR [--minutes 10] \\
        --json benchmarks/results/streams-soak-2core-cpu.json --plot benchmarks/results/streams-soak-2core-cpu.png

Bounded: every loop by the clock and a count, every wait with a timeout, 127.0.0.1 only; it stops what it started.
The exit status is 1 when a check fails, 3 when GStreamer's RTSP server or Mosquitto is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO / "tests"))
from _machine import cpu_model  # noqa: E402 (after the sys.path lines that find it)

RTSP_SERVER = REPO / "tests" / "rtsp_server.py"
SYSTEM_PYTHON = Path("/usr/bin/python3")
MISSING = 3  # the exit status of rtsp_server.py when a GStreamer element is missing, and of this script then
PREFIX = "soak"
CAMERAS = ("cam1", "cam2")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0  # watch's Ctrl-C: outlets get 10 s, the readers 5 s, then the summary
CATCH_UP_TIMEOUT = 30.0  # for the subscriber to get what the broker acknowledged
MAX_MINUTES = 60


# -- the cameras -------------------------------------------------------------------------------------------------
def write_scene_frames(seed: int, seconds: float, folder: Path) -> dict:
    """A scene of benchmarks/streams.py as numbered JPEG frames in ``folder``; returns its enrolled {name: photo}."""
    import cv2

    import streams

    plan = streams.plan_scene(seed, people=3, strangers=1, seconds=seconds)
    renderer = streams.SceneRenderer(plan)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(plan["frames"]):
        frame, _ = renderer.frame(index)
        cv2.imwrite(str(folder / f"{index:04d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return plan["enrolled"]


def rtsp_unavailable() -> str | None:
    """Why GStreamer's RTSP server cannot run here, or None."""
    if not SYSTEM_PYTHON.is_file():
        return f"{SYSTEM_PYTHON} (with GStreamer's gi bindings) is not there"
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode:
        return ("GStreamer's RTSP server is not installed: "
                "apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gst-1.0")
    return None


class RtspCameras:
    """tests/rtsp_server.py serving each scene's frames at rtsp://127.0.0.1:PORT/<camera>, on one fixed port."""

    def __init__(self, frames: dict[str, Path], port: int, log: Path):
        self.args = [str(SYSTEM_PYTHON), str(RTSP_SERVER), "--port", str(port)]
        self.args += [arg for name, folder in frames.items() for arg in ("--frames", f"{name}={folder}/%04d.jpg")]
        self.urls = [f"rtsp://127.0.0.1:{port}/{name}" for name in frames]
        self.log, self.process, self.starts = log, None, 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log)
        line = _line_within(self.process.stdout, START_TIMEOUT)
        if not line.startswith("serving"):
            status = self.process.wait(timeout=10) if line == "" else None
            raise RuntimeError(f"the RTSP server did not start (exit {status}): {self.log.read_text()[-500:]}")

    def kill(self) -> None:
        """SIGKILL, as a camera losing power: nothing is closed cleanly."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None


def _line_within(stream, timeout: float) -> str:
    """The next line of ``stream`` (text), or "" if none came within ``timeout`` seconds."""
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0].decode().strip() if lines else ""


# -- what the events reach ---------------------------------------------------------------------------------------
class Subscriber:
    """Subscribes to ``<prefix>/+/events`` with QoS 1 as a durable client (clean_session False, a fixed
    client id): messages the broker accepted while this client was away are kept for it, across the broker's
    restart too (its persistence is on). Counts every message, and the distinct ones (QoS 1 may deliver twice)."""

    def __init__(self, port: int, prefix: str):
        import paho.mqtt.client as paho

        self.topic = f"{prefix}/+/events"
        self.messages, self.distinct, self.by_kind = 0, set(), Counter()
        self.by_source: Counter = Counter()
        self.connections, self.lock = 0, threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="facestyle-streams-soak",
                                  clean_session=False, protocol=paho.MQTTv311)
        self.client.on_connect, self.client.on_message = self._on_connect, self._on_message
        self.client.reconnect_delay_set(0.5, 2.0)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            self.connections += 1
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        event = json.loads(message.payload)
        with self.lock:
            self.messages += 1
            key = json.dumps(event, sort_keys=True)
            if key not in self.distinct:
                self.distinct.add(key)
                self.by_kind[event["event"]] += 1
                self.by_source[message.topic.split("/")[-2]] += 1

    def received(self) -> int:
        with self.lock:
            return len(self.distinct)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class WebhookReceiver:
    """A stand-in for Home Assistant's webhook: answers 200 to every POST and counts the events."""

    def __init__(self):
        received, lock = [], threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    received.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.received, self.lock = received, lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/facestyle"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def counts(self) -> dict:
        with self.lock:
            return {"received": len(self.received), "distinct": len(set(self.received))}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the watch ---------------------------------------------------------------------------------------------------
class Watch:
    """`facestyle watch` on the cameras, its summary (stdout) and log (stderr) in files."""

    def __init__(self, args, urls: list[str], gallery: Path, mqtt: str, webhook: str, work: Path):
        command = [sys.executable, "-m", "facestyle.cli", "watch", "--gallery", str(gallery), "--mqtt", mqtt,
                   "--webhook", webhook, "--stall-timeout", str(args.stall_timeout), "--quiet"]
        command += [arg for url in urls for arg in ("--source", url)]
        command += ["--engines", str(args.engines)] if args.engines else []
        self.out, self.err = work / "watch.json", work / "watch.log"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err)

    def rss_mb(self) -> float | None:
        """The watch process's resident memory now (VmRSS), None once it has ended."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
        return None if kb is None else round(kb / 1024, 1)

    def cpu_s(self) -> float | None:
        """CPU seconds the watch process has used so far (user + system), None once it has ended: with the
        machine's load, whether a slow stretch was the watch starved of CPU or idle."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)  # utime, stime

    def stop(self) -> tuple[int, dict]:
        """Ctrl-C, as a person stops it; (exit status, its summary)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            status = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait(timeout=30)
        lines = [line for line in self.out.read_text().splitlines() if line.startswith("{")]
        return status, json.loads(lines[-1]) if lines else {}


def build_gallery(engines, enrolled: dict, work: Path) -> Path:
    """The scenes' people enrolled (one photo each, never one shown in a scene), with LFW distractors."""
    import streams
    from facestyle.face.analyzer import FaceAnalyzer

    with FaceAnalyzer.from_engines(engines) as analyzer:
        gallery, _ = streams.build_gallery(analyzer, enrolled, len(enrolled) + 40, work)
        gallery.close()
    return work / "gallery.db"


# -- the run -----------------------------------------------------------------------------------------------------
def fault_plan(args) -> list[tuple[float, str]]:
    """(seconds from the start, "rtsp" or "broker"): the faults evenly spread after the warm-up, alternating."""
    kinds = []
    rtsp, broker = args.rtsp_restarts, args.broker_restarts
    while rtsp or broker:
        if rtsp and (rtsp >= broker or not broker):
            kinds.append("rtsp")
            rtsp -= 1
        if broker:
            kinds.append("broker")
            broker -= 1
    span = args.minutes * 60 - args.warmup
    return [(round(args.warmup + (i + 1) * span / (len(kinds) + 1), 1), kind) for i, kind in enumerate(kinds)]


def run_faults(args, watch: Watch, cameras: RtspCameras, broker, subscriber: Subscriber, started: float) -> dict:
    """Samples RSS and events received every --sample-seconds and makes the faults when due, until --minutes."""
    faults, series, done = fault_plan(args), [], []
    end = started + args.minutes * 60
    for _ in range(int(args.minutes * 60 / args.sample_seconds) + len(faults) + 2):  # bounded: one pass per sample
        now = time.monotonic() - started
        series.append({"t_s": round(now, 1), "rss_mb": watch.rss_mb(), "cpu_s": watch.cpu_s(),
                       "load_1min": round(os.getloadavg()[0], 2), "received": dict(subscriber.by_source),
                       "identified": subscriber.by_kind["identified"]})
        if watch.process.poll() is not None:
            break
        while faults and faults[0][0] <= now:
            at, kind = faults.pop(0)
            done.append(make_fault(kind, cameras, broker, args.down_seconds, round(time.monotonic() - started, 1)))
        pause = min(args.sample_seconds, max(end - time.monotonic(), 0.0))
        if pause <= 0:
            break
        time.sleep(pause)
    return {"series": series, "faults": done}


def make_fault(kind: str, cameras: RtspCameras, broker, down_s: float, at_s: float) -> dict:
    print(f"  {at_s:.0f} s: {kind} down for {down_s:g} s", file=sys.stderr)
    stop, start = (cameras.kill, cameras.start) if kind == "rtsp" else (broker.kill, broker.start)
    stop()
    time.sleep(down_s)
    start()
    return {"at_s": at_s, "what": "RTSP server SIGKILL" if kind == "rtsp" else "broker SIGTERM", "down_s": down_s}


def rss_figures(series: list[dict], warmup: float, bound_mb: float) -> dict:
    """The start is the first sample after ``warmup`` seconds at which a face has been named (the models loaded
    and each run once, however slow the machine); the end is the last sample."""
    samples = [s for s in series if s["rss_mb"] is not None]
    start = next((s for s in samples if s["t_s"] >= warmup and s["identified"]), None)
    end = samples[-1] if samples else None
    if start is None or start is end:
        return {"start_mb": None, "end_mb": None, "bound_mb": bound_mb, "held": False,
                "note": "watch named no face after the warm-up: no start to measure from"}
    return {"start_mb": start["rss_mb"], "start_at_s": start["t_s"], "end_mb": end["rss_mb"], "end_at_s": end["t_s"],
            "growth_mb": round(end["rss_mb"] - start["rss_mb"], 1), "peak_mb": max(s["rss_mb"] for s in samples),
            "slope_mb_per_min": _slope_per_min([s for s in samples if s["t_s"] >= start["t_s"]]),
            "bound_mb": bound_mb, "bound": f"end <= start + {bound_mb:g} MB",
            "held": end["rss_mb"] <= start["rss_mb"] + bound_mb}


def _slope_per_min(samples: list[dict]) -> float | None:
    """The least-squares trend of RSS after the warm-up, MB per minute: a leak shows as a steady slope."""
    if len(samples) < 2:
        return None
    import numpy as np

    minutes = np.array([s["t_s"] for s in samples]) / 60
    return round(float(np.polyfit(minutes, [s["rss_mb"] for s in samples], 1)[0]), 2)


def events_figures(summary: dict, subscriber: Subscriber, webhook: WebhookReceiver) -> dict:
    outlets = {o["outlet"].split()[0]: o for o in summary.get("outlets", [])}
    mqtt, hook = outlets.get("mqtt", {}), outlets.get("webhook", {})
    return {"sent": mqtt.get("sent"), "received": subscriber.received(), "dropped": mqtt.get("dropped"),
            "failed": mqtt.get("failed"), "received_messages": subscriber.messages,
            "duplicates": subscriber.messages - subscriber.received(), "received_by_kind": dict(subscriber.by_kind),
            "webhook": {"sent": hook.get("sent"), "dropped": hook.get("dropped"), "failed": hook.get("failed"),
                        **webhook.counts()}}


def catch_up(subscriber: Subscriber, sent: int | None) -> None:
    """Until the subscriber has all ``sent`` events, CATCH_UP_TIMEOUT at most."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while sent is not None and subscriber.received() < sent and time.monotonic() < deadline:
        time.sleep(0.2)


def failures(report: dict, args) -> list[str]:
    events, found = report["events"], []
    if report["watch_exit_status"] != 0 or not report["reconnects"]:
        found.append(f"watch exited {report['watch_exit_status']}, summary sources: {report['reconnects']}")
    if not events["sent"]:
        found.append("no event was sent")
    if events["dropped"] or events["failed"] or events["webhook"]["dropped"] or events["webhook"]["failed"]:
        found.append(f"events dropped or failed: mqtt {events['dropped']}/{events['failed']}, webhook "
                     f"{events['webhook']['dropped']}/{events['webhook']['failed']}")
    if events["received"] != events["sent"]:
        found.append(f"the subscriber got {events['received']} distinct events of {events['sent']} sent")
    if events["webhook"]["distinct"] != events["webhook"]["sent"]:
        found.append(f"the webhook got {events['webhook']['distinct']} distinct events of {events['webhook']['sent']}")
    for source, count in report["reconnects"].items():
        if count < args.rtsp_restarts:
            found.append(f"{source}: {count} reconnects for {args.rtsp_restarts} RTSP server restarts")
    if not report["rss"]["held"]:
        found.append(f"RSS grew beyond the bound: {report['rss']}")
    return found


def run(args) -> dict:
    import mosquitto
    from facestyle.streams.outlets import DEFAULT_QUEUE_SIZE
    from facestyle.triton.local import free_port

    work = Path(args.work or tempfile.mkdtemp(prefix="facestyle-streams-soak-"))
    frames = {name: work / "scenes" / name for name in CAMERAS}
    enrolled = {}
    for seed, folder in enumerate(frames.values(), start=args.seed):
        enrolled.update(write_scene_frames(seed, args.scene_seconds, folder))
    gallery = build_gallery(args.engines, enrolled, work)
    cameras = RtspCameras(frames, free_port(), work / "rtsp.log")
    broker, subscriber, webhook, watch = mosquitto.Broker(), None, None, None
    try:
        cameras.start()
        broker.start()
        subscriber, webhook = Subscriber(broker.port, PREFIX), WebhookReceiver()
        started = time.monotonic()
        watch = Watch(args, cameras.urls, gallery, broker.url(PREFIX), webhook.url, work)
        timeline = run_faults(args, watch, cameras, broker, subscriber, started)
        status, summary = watch.stop()
        stopped_s = round(time.monotonic() - started, 1)
        events = events_figures(summary, subscriber, webhook)
        catch_up(subscriber, events["sent"])
        events = events_figures(summary, subscriber, webhook)
    finally:
        for stop in (watch and watch.process.poll() is None and watch.process.kill, subscriber and subscriber.stop,
                     webhook and webhook.stop, cameras.kill, broker.stop):
            if stop:
                stop()
    report = {
        "machine": cpu_model(), "cores": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
        "minutes": args.minutes, "warmup_s": args.warmup, "stall_timeout_s": args.stall_timeout,
        "sources": [{"camera": url, "scene": "960x540 15 fps, looped, 4 people walking"} for url in cameras.urls],
        "gallery_people": len(enrolled) + 40, "faults": timeline["faults"], "stopped_at_s": stopped_s,
        "watch_exit_status": status, "events": events,
        "mqtt": "QoS 1; watch's client (clean_session True: the broker forgets it between connections) waits for each "
                "PUBACK and sends unacknowledged events again on reconnection; events wait in its queue "
                f"({DEFAULT_QUEUE_SIZE} events by default) while the broker is away",
        "reconnects": {s["source"]: s["reconnects"] for s in summary.get("sources", [])},
        "frames": {s["source"]: {"taken": s["frames"], "dropped_by_source": s["dropped"]}
                   for s in summary.get("sources", [])},
        "rss": rss_figures(timeline["series"], args.warmup, args.rss_bound_mb), "series": timeline["series"],
        "watch_summary": summary}
    report["failures"] = failures(report, args)
    return report


# -- the outputs -------------------------------------------------------------------------------------------------
def plot(report: dict, out: Path) -> None:
    """Two panels drawn by the runtime's chart helper: the watch's RSS, and the events received per camera."""
    import numpy as np
    from PIL import Image

    from facestyle.images import encode_image
    from facestyle.manifest import atomic_write_bytes
    from facestyle.plots import save_curves_png

    series, faults = [s for s in report["series"] if s["rss_mb"] is not None], report["faults"]
    minutes = [s["t_s"] / 60 for s in series]
    marks = ", ".join(f"{f['what'].split()[0]} {f['at_s'] / 60:.1f}" for f in faults)
    rss = [s["rss_mb"] for s in series]
    sources = sorted({name for s in series for name in s["received"]})
    received = {name.rsplit("_", 1)[-1]: [s["received"].get(name, 0) for s in series] for name in sources}
    with tempfile.TemporaryDirectory() as folder:
        bound = report["rss"]
        limit = (bound["start_mb"] or 0.0) + bound["bound_mb"]
        top = save_curves_png(Path(folder) / "rss.png",
                              {"watch RSS, MB": (minutes, rss),
                               f"bound: start + {bound['bound_mb']:g} MB": ([report["warmup_s"] / 60, minutes[-1]],
                                                                             [limit, limit])},
                              f"streams soak, {report['machine']}; faults at min: {marks}", "minutes", "MB",
                              (max(limit - 4 * bound["bound_mb"], 0.0), limit + bound["bound_mb"]))
        bottom = save_curves_png(Path(folder) / "events.png",
                                 {f"events received, {name}": (minutes, counts) for name, counts in received.items()},
                                 "MQTT events received by the subscriber (distinct, cumulative)", "minutes", "events",
                                 (0.0, max([max(c) for c in received.values()] + [1]) * 1.1))
        panels = [Image.open(top).convert("RGB"), Image.open(bottom).convert("RGB")]
        image = Image.new("RGB", (panels[0].width, sum(p.height for p in panels)), "white")
        image.paste(panels[0], (0, 0))
        image.paste(panels[1], (0, panels[0].height))
    atomic_write_bytes(out, encode_image(np.asarray(image), "PNG"))


def write_json(report: dict, out: Path) -> None:
    from facestyle.manifest import atomic_write_bytes

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, (json.dumps(report, indent=2) + "\n").encode())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default=None, help="face engines folder (default: facestyle's)")
    parser.add_argument("--minutes", type=float, default=10.0, help=f"how long watch runs (at most {MAX_MINUTES})")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds before the first fault; the start RSS is taken after them, once a face was named")
    parser.add_argument("--rtsp-restarts", type=int, default=2, help="times the RTSP server is killed and restarted")
    parser.add_argument("--broker-restarts", type=int, default=1, help="times the broker is stopped and restarted")
    parser.add_argument("--down-seconds", type=float, default=5.0, help="how long a killed server stays down")
    parser.add_argument("--stall-timeout", type=float, default=5.0, help="watch's --stall-timeout")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="how often RSS and events are sampled")
    parser.add_argument("--rss-bound-mb", type=float, default=50.0, help="the end RSS may exceed the start by this")
    parser.add_argument("--scene-seconds", type=float, default=12.0, help="length of each camera's looped scene")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", help="folder for the scenes, gallery and logs (default: a new temp folder)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--plot", type=Path, help="write a PNG of RSS and events received over time here")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES or not 0 <= args.warmup < args.minutes * 60:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES}] and --warmup shorter than it")
    if min(args.rtsp_restarts, args.broker_restarts) < 0 or args.rtsp_restarts + args.broker_restarts > 20:
        parser.error("--rtsp-restarts and --broker-restarts: 0 or more, 20 in all at most")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import mosquitto

    missing = rtsp_unavailable() or mosquitto.unavailable()
    if missing:
        print(f"streams_soak: {missing}", file=sys.stderr)
        return MISSING
    report = run(args)
    if args.json:
        write_json(report, args.json)
    if args.plot:
        plot(report, args.plot)
    print(json.dumps({k: v for k, v in report.items() if k not in ("series", "watch_summary")}, indent=2))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
