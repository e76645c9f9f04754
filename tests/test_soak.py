"""The soak harness, bounded: enrolments and identifications through the CLI and the service for 30 s while the
server is killed (SIGKILL) and stopped (SIGTERM) and CLI enrolments are killed; no acknowledged write may be lost,
no photo may end up under two names, and nothing refused may be there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, SHARED_DATA, require_shared

pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'facestyle[serve]'")
pytest.importorskip("httpx", reason="httpx (test extra) is not installed")
sys.path.insert(0, str(REPO / "benchmarks"))
import soak  # noqa: E402 (benchmarks/soak.py, found through the line above)

LFW = SHARED_DATA / "lfw-view1" / "lfw-deepfunneled"


@pytest.fixture(scope="module")
def soaked(engines_dir, tmp_path_factory):
    """(the report, the work folder) of one 30 s soak with two server faults and two CLI faults."""
    require_shared(LFW)
    work = tmp_path_factory.mktemp("soak")
    out = work / "report.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--engines", str(engines_dir),
                          "--seconds", "30", "--http-clients", "2", "--cli-workers", "2", "--server-faults", "2",
                          "--photos", str(LFW), "--work", str(work / "run"), "--json", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert out.is_file(), run.stderr[-3000:]
    return json.loads(out.read_text()), work / "run", run


def test_no_acknowledged_write_is_lost_and_no_photo_is_under_two_names(soaked):
    report, _, run = soaked
    writes = report["writes"]
    assert report["failures"] == [] and run.returncode == 0, (report["failures"], run.stderr[-2000:])
    assert writes["readable"] and writes["integrity"] == "ok"
    assert writes["missing"] == 0 and writes["missing_writes"] == []
    assert writes["present"] == writes["acknowledged"]
    assert writes["duplicates"] == 0 and writes["photos_under_two_names"] == []
    assert writes["people_without_embedding"] == [] and writes["broken_embeddings"] == 0
    assert writes["refused_present"] == []
    assert report["worker_errors"] == []


def test_the_faults_happened_under_load(soaked):
    report, _, _ = soaked
    assert report["faults"] == {"server-SIGKILL": 1, "server-SIGTERM": 1, "cli-SIGKILL": 1, "cli-SIGTERM": 1}
    assert report["server"]["starts"] == 3
    assert [e["exit_status"] for e in report["server"]["sigterm_exits"]] == [0, 0]  # the fault and the final stop
    requests = report["requests"]
    assert requests["enroll-http"]["ok"] >= 10 and requests["enroll-cli"]["ok"] >= 2
    assert requests["identify-http"]["ok"] >= 5 and requests["identify-cli"]["ok"] >= 1
    assert report["writes"]["acknowledged"] >= 12
    assert report["twins"].get("refused", 0) >= 1  # the one-photo-one-name rule was exercised through both doors


def test_the_checks_see_a_lost_write_and_a_refused_one_present(soaked, engines_dir):
    """The gallery checks are not blind: a write acknowledged but absent, and one refused but present, are found."""
    report, work, _ = soaked
    gallery = work / "people.db"
    exported = subprocess.run([sys.executable, "-m", "facestyle.cli", "gallery", "--gallery", str(gallery), "export"],
                              capture_output=True, text=True, check=True)
    stored = json.loads(exported.stdout)["records"][0]
    ghost = soak.Write("http", "nobody-enrolled-this", "0" * 64, "ok")
    refused = soak.Write("cli", stored["name"], stored["source_sha256"], "refused", "CLI another person")
    checks = soak.check_gallery(gallery, [ghost, refused], engines_dir)
    assert checks["missing"] == 1 and checks["missing_writes"] == [{"name": ghost.name, "sha256": ghost.sha}]
    assert checks["refused_present"] == [{"name": stored["name"], "detail": "CLI another person"}]
    assert soak.failures({"writes": checks, "worker_errors": []}) == [
        "1 acknowledged write(s) missing",
        f"1 refused write(s) present: [{{'name': {stored['name']!r}, 'detail': 'CLI another person'}}]"]
