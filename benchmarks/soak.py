"""Soak: concurrent enrolments and identifications through the CLI and the HTTP service while the server is killed
(SIGKILL) and stopped (SIGTERM) and some CLI enrolments are killed, then every acknowledged write looked for.

Each enrolment is one LFW photo under its own person's name; every sixth photo is also sent, at once, through the
other door under a second name (the gallery must keep it under one). A write counts as acknowledged when the CLI
exits 0 saying "enrolled" or the service answers 2xx with the photo "enrolled". After the load, the gallery (SQLite)
is checked through the product: `gallery list --json` and `gallery export` must read it, every acknowledged
(name, photo) must be there, no person may be listed without an embedding, no photo under two names, and no write
refused with a definite answer (4xx, CLI exit 2) may be there.

    python benchmarks/soak.py --engines DIR [--seconds 60] [--json benchmarks/results/soak-2core-cpu.json]

Bounded: --seconds of load (at most 900), every request and command with a timeout, 127.0.0.1 only; it stops by
itself and leaves nothing running. The exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402 (after the sys.path line that finds it)

REPO = Path(__file__).resolve().parent.parent
LFW = REPO.parent / "shared" / "data" / "lfw-view1" / "lfw-deepfunneled"
MAX_SECONDS = 900
TWIN_EVERY = 6  # every sixth photo is also enrolled through the other door under a second name
MAX_WAITING_TWINS = 2  # older twins are dropped: a twin is meant to race its first enrolment, not follow it
CLI_TIMEOUT = 120
HTTP_TIMEOUT = 60
START_TIMEOUT = 180


@dataclass
class Write:
    """One enrolment attempt and what came back: ok (acknowledged), refused (a definite no), unknown."""

    door: str  # "cli" or "http"
    name: str
    sha: str
    outcome: str = "unknown"
    detail: str = ""


@dataclass
class Ledger:
    """Everything sent and answered, by kind; shared by the worker threads."""

    writes: list[Write] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: defaultdict(Counter))
    faults: Counter = field(default_factory=Counter)
    text_after_json: Counter = field(default_factory=Counter)  # stdout lines a --json command printed after its JSON
    worker_errors: list[str] = field(default_factory=list)
    waits: int = 0  # 0.2 s pauses of an HTTP client while the server restarted
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str, outcome: str) -> None:
        with self.lock:
            self.counts[kind]["sent"] += 1
            self.counts[kind][outcome] += 1

    def record(self, write: Write, kind: str) -> None:
        with self.lock:
            self.writes.append(write)
        self.count(kind, write.outcome)


class Photos:
    """One LFW photo per person for enrolments (in a fixed shuffled order), and twins queued for the other door."""

    def __init__(self, root: Path, seed: int):
        people = sorted(p for p in root.iterdir() if p.is_dir())
        random.Random(seed).shuffle(people)
        self.pool = [(p.name, min(p.iterdir())) for p in people]
        self.next_index, self.twins, self.lock = 0, {"cli": [], "http": []}, threading.Lock()
        self.calls = Counter()

    def take(self, door: str) -> tuple[str, Path] | None:
        """(name, photo) to enrol through ``door``: every other time the latest twin waiting for it, else a fresh
        person (so that a slow door enrols people of its own too)."""
        other = "http" if door == "cli" else "cli"
        with self.lock:
            self.calls[door] += 1
            if self.twins[door] and self.calls[door] % 2:
                return self.twins[door].pop()
            if self.next_index >= len(self.pool):
                return None
            name, photo = self.pool[self.next_index]
            self.next_index += 1
            if self.next_index % TWIN_EVERY == 0:
                self.twins[other] = [*self.twins[other], (name + "-twin", photo)][-MAX_WAITING_TWINS:]
            return name, photo

    def any(self, rng: random.Random) -> Path:
        return self.pool[rng.randrange(len(self.pool))][1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the server ----------------------------------------------------------------------------------
class Server:
    """`facestyle serve` on 127.0.0.1 (a free port), restarted after every fault; its output goes to a log file."""

    def __init__(self, engines: Path, gallery: Path, token: Path, work: Path):
        self.args = [sys.executable, "-m", "facestyle.serve", "--engines", str(engines), "--gallery", str(gallery),
                     "--port", "0", "--token-file", str(token), "--drain-timeout", "10", "--workers", "2"]
        self.token, self.work, self.starts = token.read_text().strip(), work, 0
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self.peak_rss_kb = 0
        self.term_exits: list[dict] = []

    def start(self) -> None:
        import httpx

        self.starts += 1
        log = self.work / f"serve-{self.starts}.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        deadline, url = time.monotonic() + START_TIMEOUT, None
        while time.monotonic() < deadline and self.process.poll() is None:
            url = url or _listening(log)
            if url and _ready(httpx, url):
                self.url = url
                return
            time.sleep(0.2)
        self.kill()
        raise SystemExit(f"soak: the server did not become ready (log: {log.read_text()[-2000:]})")

    def note_memory(self) -> None:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            self.peak_rss_kb = max(self.peak_rss_kb, int(match.group(1)))

    def signal(self, sig: int) -> None:
        """Send ``sig``, wait for the process to end (SIGKILL after 60 s), and note how a SIGTERM ended."""
        self.note_memory()
        self.url, started = None, time.monotonic()
        self.process.send_signal(sig)
        try:
            code = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if sig == signal.SIGTERM:
            self.term_exits.append({"exit_status": code, "seconds_to_exit": round(time.monotonic() - started, 2)})

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _listening(log: Path) -> str | None:
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
    return match.group(1) if match else None


def _ready(httpx, url: str) -> bool:
    try:
        r = httpx.get(url + "/readyz", timeout=5)
        return r.status_code == 200 and r.json().get("ready") is True
    except (httpx.HTTPError, ValueError):
        return False


# -- the workers ---------------------------------------------------------------------------------
class Soak:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args, self.work = args, work
        self.gallery = work / "people.db"
        token = work / "token"
        token.write_text("soak-" + os.urandom(12).hex() + "\n")
        self.server = Server(args.engines, self.gallery, token, work)
        import httpx

        self.httpx = httpx
        self.photos = Photos(args.photos, args.seed)
        self.ledger = Ledger()
        self.stop = threading.Event()
        self.cli_running: dict[int, tuple[subprocess.Popen, Write | None]] = {}
        self.cli_lock = threading.Lock()

    # CLI ------------------------------------------------------------------------------------
    def cli(self, *args: str, write: Write | None = None) -> tuple[int | None, str, str]:
        cmd = [sys.executable, "-m", "facestyle.cli", *args]
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with self.cli_lock:
            self.cli_running[process.pid] = (process, write)
        try:
            out, err = process.communicate(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            return None, out, "timed out"
        finally:
            with self.cli_lock:
                self.cli_running.pop(process.pid, None)
        return process.returncode, out, err

    def cli_enroll(self, name: str, photo: Path) -> None:
        write = Write("cli", name, sha256(photo))
        code, out, err = self.cli("enroll", "--gallery", str(self.gallery), "--engines", str(self.args.engines),
                                  "--json", name, str(photo), write=write)
        if code == 0 and any(o.get("status") == "enrolled" for o in self.json_of(out)):
            write.outcome = "ok"  # acknowledged, even where a signal came after the answer
        elif write.outcome == "killed":
            pass
        elif code == 2 and err.startswith("facestyle enroll: error:"):
            write.outcome, write.detail = "refused", _cli_reason(err)
        else:
            write.outcome, write.detail = "unknown", f"exit {code}: {err.strip()[-200:]}"
        self.ledger.record(write, "enroll-cli")

    def json_of(self, out: str) -> list:
        """The JSON document at the start of a command's stdout; text after it is counted (`--json` promises none)."""
        doc, end = json.JSONDecoder().raw_decode(out)
        if out[end:].strip():
            with self.ledger.lock:
                self.ledger.text_after_json[out[end:].strip().split(": ", 1)[-1][:60]] += 1
        return doc

    def cli_identify(self, photo: Path) -> None:
        code, _, err = self.cli("identify", "--gallery", str(self.gallery), "--engines", str(self.args.engines),
                                "--json", str(photo))
        self.ledger.count("identify-cli", "ok" if code == 0 else "failed")

    # HTTP -----------------------------------------------------------------------------------
    def http_enroll(self, client, url: str, name: str, photo: Path) -> None:
        write = Write("http", name, sha256(photo))
        try:
            r = client.post(url + "/v1/enroll", data={"name": name},
                            files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))])
            write.outcome, write.detail = _http_write_outcome(r)
        except self.httpx.HTTPError as error:
            write.outcome, write.detail = "unknown", type(error).__name__
        self.ledger.record(write, "enroll-http")

    def http_identify(self, client, url: str, photo: Path) -> None:
        try:
            r = client.post(url + "/v1/identify", files=[("image", (photo.name, photo.read_bytes(), "image/jpeg"))])
            outcome = "ok" if r.status_code == 200 else "refused" if 400 <= r.status_code < 500 else "failed"
        except self.httpx.HTTPError:
            outcome = "failed"
        self.ledger.count("identify-http", outcome)

    # loops ----------------------------------------------------------------------------------
    def worker(self, door: str, index: int) -> None:
        try:
            self.work_loop(door, index)
        except Exception as error:  # noqa: BLE001 (reported: a failed check of the run, not lost in a thread)
            with self.ledger.lock:
                self.ledger.worker_errors.append(f"{door} worker {index}: {type(error).__name__}: {error}")

    def work_loop(self, door: str, index: int) -> None:
        """Two enrolments, then one identification, until told to stop (or out of photos)."""
        rng = random.Random(self.args.seed * 1000 + index)
        client = self.httpx.Client(headers={"Authorization": f"Bearer {self.server.token}"}, timeout=HTTP_TIMEOUT)
        try:
            for turn in range(1_000_000):
                url = self.server.url
                if self.stop.is_set():
                    return
                if door == "http" and url is None:
                    with self.ledger.lock:
                        self.ledger.waits += 1
                    time.sleep(0.2)  # the server is restarting: nothing is sent meanwhile
                    continue
                if turn % 3 == 2:
                    (self.cli_identify(self.photos.any(rng)) if door == "cli"
                     else self.http_identify(client, url, self.photos.any(rng)))
                    continue
                job = self.photos.take(door)
                if job is None:
                    return
                self.cli_enroll(*job) if door == "cli" else self.http_enroll(client, url, *job)
        finally:
            client.close()

    def faults(self, start: float, end: float) -> None:
        """Every server fault (SIGKILL, SIGTERM, alternately), each preceded by one to a CLI enrolment, at evenly
        spread times; one that falls while the server restarts comes once it is ready. The load lasts until the
        last one's restart, even beyond --seconds."""
        gap = (end - start) / (self.args.server_faults + 1)
        for i in range(self.args.server_faults):
            sig = signal.SIGKILL if i % 2 == 0 else signal.SIGTERM
            time.sleep(max(0.0, start + gap * (i + 0.5) - time.monotonic()))
            self.kill_a_cli_enrolment(sig)
            time.sleep(max(0.0, start + gap * (i + 1) - time.monotonic()))
            self.server.signal(sig)
            self.ledger.faults[f"server-{sig.name}"] += 1
            self.server.start()

    def kill_a_cli_enrolment(self, sig: int) -> None:
        """``sig`` to one running `facestyle enroll` (waiting up to 10 s for one to be running)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.cli_lock:
                enrolments = [(p, w) for p, w in self.cli_running.values() if w is not None and p.poll() is None]
                if enrolments:
                    process, write = enrolments[0]
                    write.outcome, write.detail = "killed", sig.name
                    process.send_signal(sig)
                    self.ledger.faults[f"cli-{sig.name}"] += 1
                    return
            time.sleep(0.05)

    def run(self) -> dict:
        started = time.monotonic()
        self.server.start()
        load_start = time.monotonic()
        end = load_start + self.args.seconds
        threads = [threading.Thread(target=self.worker, args=(door, i), daemon=True)
                   for i, door in enumerate(["http"] * self.args.http_clients + ["cli"] * self.args.cli_workers)]
        faults = threading.Thread(target=self.faults, args=(load_start, end), daemon=True)
        for t in [*threads, faults]:
            t.start()
        self.stop.wait(max(0.0, end - time.monotonic()))
        faults.join()
        self.stop.set()
        for t in threads:
            t.join(CLI_TIMEOUT + HTTP_TIMEOUT)
        load_seconds = time.monotonic() - load_start
        self.server.note_memory()
        self.server.signal(signal.SIGTERM)
        checks = check_gallery(self.gallery, self.ledger.writes, self.args.engines)
        return self.report(load_seconds, time.monotonic() - started, checks)

    def report(self, load_seconds: float, total_seconds: float, checks: dict) -> dict:
        writes = Counter(w.outcome for w in self.ledger.writes)
        return {
            "what": "soak: concurrent enrolments and identifications through the CLI and the service, with faults",
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
            "settings": {"seconds": self.args.seconds, "http_clients": self.args.http_clients,
                         "cli_workers": self.args.cli_workers, "server_faults": self.args.server_faults,
                         "seed": self.args.seed, "photos": "LFW View 1 (deep-funneled), one photo per person",
                         "twin_every": TWIN_EVERY},
            "duration_s": {"load": round(load_seconds, 1), "total": round(total_seconds, 1)},
            "requests": {kind: dict(sorted(c.items())) for kind, c in sorted(self.ledger.counts.items())},
            "faults": dict(sorted(self.ledger.faults.items())),
            "server": {"starts": self.server.starts, "sigterm_exits": self.server.term_exits,
                       "peak_rss_mb": round(self.server.peak_rss_kb / 1024, 1)},
            "refusals": dict(Counter(w.detail for w in self.ledger.writes if w.outcome == "refused").most_common()),
            "unsettled": dict(Counter(f"{w.door} {w.outcome}: {w.detail}" for w in self.ledger.writes
                                      if w.outcome in ("unknown", "killed")).most_common()),
            "twins": dict(Counter(w.outcome for w in self.ledger.writes if w.name.endswith("-twin"))),
            "http_waits_for_restart": self.ledger.waits,
            "cli_text_after_json": dict(self.ledger.text_after_json),
            "worker_errors": self.ledger.worker_errors,
            "writes": {"attempted": len(self.ledger.writes), "acknowledged": writes["ok"], "refused": writes["refused"],
                       "unknown": writes["unknown"], "killed": writes["killed"], **checks},
        }


def _http_write_outcome(r) -> tuple[str, str]:
    """(ok, refused or unknown; the reason): 2xx with the photo enrolled, a 4xx (a definite no), else unknown."""
    if 200 <= r.status_code < 300:
        enrolled = any(p.get("status") == "enrolled" for p in r.json().get("photos", []))
        return ("ok", "") if enrolled else ("refused", "not enrolled")
    try:
        code = r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = r.text[:80]
    return ("refused" if 400 <= r.status_code < 500 else "unknown"), f"HTTP {r.status_code} {code}"


def _cli_reason(err: str) -> str:
    """The reason in `facestyle enroll: error: FILE: REASON (...)`, without the file."""
    line = err.splitlines()[0]
    match = re.search(r"\.jpg: ([^(;]+)", line)
    return "CLI " + (match.group(1).strip() if match else line.removeprefix("facestyle enroll: error: ")[:80])


# -- the checks ----------------------------------------------------------------------------------
def check_gallery(gallery: Path, writes: list[Write], engines: Path) -> dict:
    """What the gallery holds against what was acknowledged and refused, read through the product's commands."""
    integrity = _integrity(gallery)
    env = {**os.environ, "FACESTYLE_ENGINES": str(engines)}
    listed = subprocess.run([sys.executable, "-m", "facestyle.cli", "gallery", "--gallery", str(gallery), "list",
                             "--json"], capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env)
    exported = subprocess.run([sys.executable, "-m", "facestyle.cli", "gallery", "--gallery", str(gallery), "export"],
                              capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env)
    if listed.returncode or exported.returncode:
        return {"readable": False, "integrity": integrity, "error": (listed.stderr + exported.stderr).strip()[-500:]}
    people = json.loads(listed.stdout)
    doc = json.loads(exported.stdout)
    dim = len(doc["records"][0]["embedding"]) if doc["records"] else 0
    stored = {(r["name"], r["source_sha256"]) for r in doc["records"]}
    names_of = defaultdict(set)
    for name, sha in stored:
        names_of[sha].add(name)
    acknowledged = [(w.name, w.sha) for w in writes if w.outcome == "ok"]
    missing = [{"name": n, "sha256": s} for n, s in acknowledged if (n, s) not in stored]
    refused_present = [{"name": w.name, "detail": w.detail} for w in writes
                       if w.outcome == "refused" and (w.name, w.sha) in stored]
    unsettled = [(w.name, w.sha) for w in writes if w.outcome in ("unknown", "killed")]
    return {
        "readable": True, "integrity": integrity, "people": len(people), "embeddings": len(doc["records"]),
        "present": len(acknowledged) - len(missing), "missing": len(missing), "missing_writes": missing[:20],
        "people_without_embedding": [p["name"] for p in people if p["photos"] == 0],
        "broken_embeddings": sum(1 for r in doc["records"] if len(r["embedding"]) != dim or dim == 0),
        "photos_under_two_names": sorted(sorted(n) for n in names_of.values() if len(n) > 1),
        "duplicates": sum(1 for n in names_of.values() if len(n) > 1),
        "refused_present": refused_present,
        "unsettled_present": sum(1 for key in unsettled if key in stored), "unsettled_absent":
            sum(1 for key in unsettled if key not in stored),
    }


def _integrity(gallery: Path) -> str:
    db = sqlite3.connect(f"file:{gallery}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def failures(report: dict) -> list[str]:
    """What the report says went wrong, as sentences (empty: every check held)."""
    w = report["writes"]
    if not w.get("readable"):
        return [f"the gallery is unreadable: {w.get('error')}"]
    found = [f"worker error: {e}" for e in report["worker_errors"]]
    for key, what in (("missing", "acknowledged write(s) missing"), ("duplicates", "photo(s) under two names")):
        if w[key]:
            found.append(f"{w[key]} {what}")
    for key, what in (("people_without_embedding", "person(s) without an embedding"),
                      ("refused_present", "refused write(s) present")):
        if w[key]:
            found.append(f"{len(w[key])} {what}: {w[key][:5]}")
    if w["integrity"] != "ok" or w["broken_embeddings"]:
        found.append(f"integrity {w['integrity']}, {w['broken_embeddings']} broken embedding(s)")
    return found


# -- the command ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--engines", type=Path, required=True, help="artifact folder of the face models (facestyle build)")
    p.add_argument("--seconds", type=float, default=60, help=f"seconds of load (default 60, at most {MAX_SECONDS})")
    p.add_argument("--http-clients", type=int, default=3, help="threads sending HTTP requests (default 3)")
    p.add_argument("--cli-workers", type=int, default=2, help="threads running CLI commands (default 2)")
    p.add_argument("--server-faults", type=int, default=None,
                   help="server SIGKILLs and SIGTERMs, alternately, each preceded by one to a CLI enrolment "
                        "(default: one per 20 s of load, at least 2)")
    p.add_argument("--photos", type=Path, default=LFW, help="a folder of person folders (default: LFW View 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, help="folder for the gallery and the server logs (default: a temporary one)")
    p.add_argument("--json", type=Path, help="write the report here (temp file, then rename)")
    args = p.parse_args(argv)
    if not 1 <= args.seconds <= MAX_SECONDS:
        p.error(f"--seconds {args.seconds:g}: expected 1 to {MAX_SECONDS}")
    if not (1 <= args.http_clients <= 16 and 1 <= args.cli_workers <= 8):
        p.error("--http-clients: expected 1 to 16; --cli-workers: 1 to 8")
    if args.server_faults is None:
        args.server_faults = max(2, int(args.seconds // 20))
    if not 0 <= args.server_faults <= 50:
        p.error(f"--server-faults {args.server_faults}: expected 0 to 50")
    if not args.photos.is_dir():
        p.error(f"--photos {args.photos}: no such folder")
    return args


def soak(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="facestyle-soak-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        run = Soak(args, work)
        try:
            return run.run()
        finally:
            run.stop.set()
            run.server.kill()
            with run.cli_lock:
                for process, _ in list(run.cli_running.values()):
                    process.kill()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = soak(args)
    report["failures"] = failures(report)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.json.with_name(args.json.name + ".tmp")
        temporary.write_text(text + "\n")
        os.replace(temporary, args.json)
    print(text)
    for line in report["failures"]:
        print(f"soak: FAILED: {line}", file=sys.stderr)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
