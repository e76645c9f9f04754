"""Slow and malformed clients against a real server over sockets on 127.0.0.1: probes and other clients are
served while some clients hold slots, bodies and headers that never arrive are cut off, bad JSON is a 4xx on a
connection that stays usable, a client that leaves is counted as 499 without a traceback, /readyz tells the
truth about the gallery without showing paths to requests without the token."""

from __future__ import annotations

import json
import re
import socket
import time

from serve_helpers import *  # noqa: F403 (fixtures)
from serve_helpers import TOKEN, Server, httpx


def _address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _open(server: Server, source: str = "127.0.0.1") -> socket.socket:
    """A connection from ``source`` (any 127.x address is this machine: each is another client to the server)."""
    sock = socket.create_connection(_address(server), timeout=30, source_address=(source, 0))
    return sock


def _start_upload(server: Server, source: str, length: int = 100_000) -> socket.socket:
    """An authenticated upload whose headers are sent whole and whose body has only begun."""
    sock = _open(server, source)
    sock.sendall(f"POST /v1/embed HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"images\": [\"".encode())
    return sock


def _response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Status, headers and body of one response read off the socket (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def _metric(server: Server, pattern: str) -> float:
    text = httpx.get(server.url + "/metrics", headers=server.headers(), timeout=30).text
    found = re.findall(rf"^{pattern} ([0-9.e+-]+)$", text, re.M)
    return sum(float(v) for v in found)


def _wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def test_probes_and_other_clients_are_served_while_slow_uploads_hold_slots(serve_engines, token_file, astronaut_bytes):
    s = Server(serve_engines, "--max-in-flight", "8", "--max-in-flight-per-client", "4", token_file=token_file)
    slow = []
    try:
        slow = [_start_upload(s, "127.0.0.2") for _ in range(4)]
        _wait_for(lambda: _metric(s, "facestyle_http_requests_in_flight") == 4, "4 uploads in flight")
        fifth = _start_upload(s, "127.0.0.2")
        status, _, body = _response(fifth)
        assert status == 503 and "requests of this client in flight" in json.loads(body)["error"]["message"]
        fifth.close()
        with s.client() as c:  # another client still gets its answers
            r = c.post("/v1/embed", files=[("images", ("a.png", astronaut_bytes, "image/png"))])
            assert r.status_code == 200 and len(r.json()["images"][0]["faces"]) == 1
        slow += [_start_upload(s, "127.0.0.3") for _ in range(4)]
        _wait_for(lambda: _metric(s, "facestyle_http_requests_in_flight") == 8, "8 uploads in flight")
        with s.client() as c:  # the server is full: work is refused, probes are not
            assert c.post("/v1/embed", files=[("images", ("a.png", astronaut_bytes, "image/png"))]).status_code == 503
            assert [c.get(p).status_code for p in ("/healthz", "/readyz", "/metrics")] == [200, 200, 200]
    finally:
        for sock in slow:
            sock.close()
        assert s.stop() == 0


def test_a_body_that_never_arrives_gets_408_and_headers_that_never_arrive_close(serve_engines, token_file):
    s = Server(serve_engines, "--body-timeout", "1", "--header-timeout", "1", token_file=token_file)
    try:
        upload = _start_upload(s, "127.0.0.1")
        status, headers, body = _response(upload)
        assert status == 408 and headers.get("connection") == "close"
        assert json.loads(body)["error"] == {"code": "request_timeout", "input": "body",
                                             "message": "request body: not received within 1 s (--body-timeout)"}
        half = _open(s)
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the blank line that ends the headers never comes
        assert half.recv(1024) == b""  # closed by the server (recv would wait out the 30 s socket timeout)
        assert _metric(s, 'facestyle_http_errors_total{status="408",code="request_timeout"}') == 1
    finally:
        assert s.stop() == 0


def test_bad_json_is_a_4xx_and_the_connection_stays_usable(server):
    bodies = {
        "a 5,000-digit integer": b'{"images": [' + b"7" * 5000 + b"]}",
        "100,000 nested arrays": b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "a lone surrogate in a field name": b'{"\\ud800": "x", "images": ["aGVsbG8="]}',
    }
    sock = _open(server)
    try:
        for what, body in bodies.items():
            sock.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                         + b"\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            status, headers, answer = _response(sock)
            error = json.loads(answer)["error"]
            assert status == 422 and error["code"] == "malformed_request", (what, answer)
            assert "\n" not in error["message"] and headers.get("connection") != "close", what
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # the same connection still answers
        assert _response(sock)[0] == 200
    finally:
        sock.close()
    with server.client() as c:
        r = c.post("/v1/enroll", content=b'{"name": "\\ud800", "images": ["aGVsbG8="]}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "\\ud800" in r.json()["error"]["message"] and r.json()["error"]["input"] == "name"


def test_a_client_that_leaves_is_counted_as_499_without_a_traceback(serve_engines, token_file):
    s = Server(serve_engines, token_file=token_file)
    try:
        for _ in range(3):
            upload = _start_upload(s, "127.0.0.1")
            time.sleep(0.2)  # let the server start reading the body before the client goes
            upload.close()
        _wait_for(lambda: _metric(s, 'facestyle_http_errors_total{status="499",code="client_disconnected"}') == 3,
                  "three disconnects counted")
        assert _metric(s, 'facestyle_http_errors_total{status="500",code="[a-z_]+"}') == 0
    finally:
        assert s.stop() == 0
    log = "".join(s.lines) + s.process.stdout.read()
    assert "Traceback" not in log and "ClientDisconnect" not in log, log


class _Unready(Server):
    """A server not expected to become ready: started, not waited for."""

    def wait_ready(self, timeout: float = 0) -> dict:
        return {}


def test_readyz_is_not_ready_with_a_broken_gallery_and_shows_paths_only_with_the_token(serve_engines, token_file,
                                                                                          tmp_path):
    broken = tmp_path / "secret-folder" / "people.db"
    broken.parent.mkdir()
    broken.write_bytes(b"this is not an SQLite database" * 100)
    s = _Unready(serve_engines, "--gallery", str(broken), token_file=token_file)
    try:
        _wait_for(lambda: httpx.get(s.url + "/readyz").json()["gallery"]["state"] != "loading", "the gallery loaded")
        public = httpx.get(s.url + "/readyz")
        assert public.status_code == 503 and public.json()["ready"] is False
        assert public.json()["gallery"] == {"state": "failed"} and "secret-folder" not in public.text
        private = httpx.get(s.url + "/readyz", headers=s.headers())
        assert private.status_code == 503 and private.json()["gallery"]["path"] == str(broken)
        assert private.json()["gallery"]["error"]
    finally:
        assert s.stop() == 0
