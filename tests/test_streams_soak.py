"""The streams soak, short: `facestyle watch` on two RTSP cameras for 90 s, sending to MQTT and a webhook,
while the RTSP server is killed and started again and the broker restarted; no event may be dropped or lost, each
camera must reconnect, and the watch's memory must stay within the bound. The report's checks are not blind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, SHARED_DATA, require_shared

pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed: pip install 'facestyle[video]'")
sys.path.insert(0, str(REPO / "benchmarks"))
import streams_soak  # noqa: E402 (benchmarks/streams_soak.py, found through the line above)
from mosquitto import unavailable as broker_unavailable  # noqa: E402 (tests/mosquitto.py)

RESTARTS = ["--rtsp-restarts", "1", "--broker-restarts", "1"]


@pytest.fixture(scope="module")
def soaked(engines_dir, tmp_path_factory):
    """The report of one 90 s soak with one RTSP server restart and one broker restart."""
    missing = streams_soak.rtsp_unavailable() or broker_unavailable()
    if missing:
        pytest.skip(missing)
    require_shared(SHARED_DATA / "lfw-view1" / "lfw-deepfunneled")
    require_shared(SHARED_DATA / "content" / "bsds500")
    work = tmp_path_factory.mktemp("streams-soak")
    out = work / "report.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "streams_soak.py"), "--engines", str(engines_dir),
                          "--minutes", "1.5", "--warmup", "20", *RESTARTS, "--down-seconds", "3", "--stall-timeout", "3",
                          "--scene-seconds", "8", "--work", str(work / "run"), "--json", str(out),
                          "--plot", str(work / "soak.png")], capture_output=True, text=True, timeout=900)
    assert out.is_file(), run.stderr[-3000:]
    return json.loads(out.read_text()), work, run


def test_no_event_is_dropped_or_lost_across_the_restarts(soaked):
    report, _, run = soaked
    events = report["events"]
    assert report["failures"] == [] and run.returncode == 0, (report["failures"], run.stderr[-2000:])
    assert report["watch_exit_status"] == 0
    assert events["sent"] > 0 and events["dropped"] == 0 and events["failed"] == 0
    assert events["received"] == events["sent"]
    assert events["received_by_kind"]["track_start"] > 0 and events["received_by_kind"]["reconnected"] >= 2
    webhook = events["webhook"]
    assert webhook["sent"] == webhook["distinct"] == events["sent"] and webhook["dropped"] == 0


def test_both_faults_happened_and_each_camera_came_back(soaked):
    report, _, _ = soaked
    assert [f["what"] for f in report["faults"]] == ["RTSP server SIGKILL", "broker SIGTERM"]
    assert len(report["reconnects"]) == 2 and all(n >= 1 for n in report["reconnects"].values())
    assert all(f["taken"] > 0 for f in report["frames"].values())


def test_memory_stays_within_the_bound(soaked):
    report, work, _ = soaked
    rss = report["rss"]
    assert rss["start_at_s"] >= 20 and rss["end_at_s"] > rss["start_at_s"] + 20
    assert rss["held"] and rss["end_mb"] <= rss["start_mb"] + rss["bound_mb"]
    assert len(report["series"]) >= 10
    assert (work / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_faults_are_spread_after_the_warmup():
    args = streams_soak.parse_args(["--minutes", "10", "--warmup", "60"])
    assert streams_soak.fault_plan(args) == [(195.0, "rtsp"), (330.0, "broker"), (465.0, "rtsp")]
    args = streams_soak.parse_args(["--minutes", "1", "--warmup", "20", *RESTARTS])
    assert streams_soak.fault_plan(args) == [(33.3, "rtsp"), (46.7, "broker")]


def test_the_checks_see_a_drop_a_loss_a_missed_reconnection_and_growth():
    args = streams_soak.parse_args(["--minutes", "1", "--warmup", "20", *RESTARTS])
    series = [{"t_s": 0.0, "rss_mb": 100.0, "identified": 0}, {"t_s": 20.0, "rss_mb": 230.0, "identified": 0},
              {"t_s": 25.0, "rss_mb": 400.0, "identified": 1}, {"t_s": 65.0, "rss_mb": 451.0, "identified": 3}]
    rss = streams_soak.rss_figures(series, warmup=20, bound_mb=50)  # the models still loading at 20 s: not the start
    assert (rss["start_mb"], rss["end_mb"], rss["growth_mb"], rss["held"]) == (400.0, 451.0, 51.0, False)
    assert rss["slope_mb_per_min"] == pytest.approx(51 / (40 / 60))  # the samples from the start on
    assert not streams_soak.rss_figures(series[:2], warmup=20, bound_mb=50)["held"]  # no face named: no start
    webhook = {"sent": 9, "dropped": 0, "failed": 0, "received": 9, "distinct": 8}  # one came twice
    report = {"watch_exit_status": 0, "reconnects": {"cam1": 1, "cam2": 0}, "rss": rss,
              "events": {"sent": 10, "received": 9, "dropped": 1, "failed": 0, "webhook": webhook}}
    assert streams_soak.failures(report, args) == [
        "events dropped or failed: mqtt 1/0, webhook 0/0", "the subscriber got 9 distinct events of 10 sent",
        "the webhook got 8 distinct events of 9", "cam2: 0 reconnects for 1 RTSP server restarts",
        f"RSS grew beyond the bound: {rss}"]
