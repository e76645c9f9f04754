"""Every error code of the service, as {"error": {"code", "message", "input"}}, from a real server."""

from __future__ import annotations

import base64
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from serve_helpers import *  # noqa: F403 (fixtures)
from serve_helpers import Server, httpx


def _error(response, status: int, code: str, input=...) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "input"}
    assert body["error"]["code"] == code and "\n" not in body["error"]["message"]
    if input is not ...:
        assert body["error"]["input"] == input
    return body["error"]["message"]


def test_400_not_an_image_and_no_face(server, astronaut_bytes, coffee_bytes):
    with server.client() as c:
        text = c.post("/v1/embed", files=[("images", ("notes.txt", b"hello, not an image", "text/plain"))])
        cut = c.post("/v1/verify", files=[("a", ("a.png", astronaut_bytes[:5000], "image/png")),
                                          ("b", ("b.png", astronaut_bytes, "image/png"))])
        noface = c.post("/v1/verify", files=[("a", ("a.png", astronaut_bytes, "image/png")),
                                             ("b", ("coffee.png", coffee_bytes, "image/png"))])
        enrol = c.post("/v1/enroll", data={"name": "cup"}, files=[("images", ("coffee.png", coffee_bytes, "image/png"))])
        none_found = c.post("/v1/embed", files=[("images", ("coffee.png", coffee_bytes, "image/png"))])
    assert _error(text, 400, "bad_image", "notes.txt").startswith("notes.txt: not a readable image")
    assert "corrupt or truncated" in _error(cut, 400, "bad_image", "a.png")
    assert "coffee.png: no face found" in _error(noface, 400, "no_face", "coffee.png")
    assert "nothing enrolled" in _error(enrol, 400, "no_face")
    assert none_found.status_code == 200 and none_found.json()["images"][0]["faces"] == []  # embed: none is an answer


def test_404_unknown_person_style_and_route(server, astronaut_bytes):
    with server.client() as c:
        person = c.delete("/v1/people/nobody-of-that-name")
        style = c.post("/v1/stylize?style=no_such_style", files=[("image", ("a.png", astronaut_bytes, "image/png"))])
        route = c.get("/v1/nothing-here")
    assert "nobody of that name" in _error(person, 404, "not_found", "name")
    assert "style 'no_such_style' is not served here" in _error(style, 404, "not_found", "style")
    assert "no such endpoint" in _error(route, 404, "not_found")


def test_404_without_a_gallery(serve_engines, astronaut_bytes):
    s = Server(serve_engines)
    try:
        r = httpx.get(s.url + "/v1/people")
        assert "--gallery" in _error(r, 404, "not_found", "gallery")
    finally:
        assert s.stop() == 0


def test_413_refused_before_the_body_is_read(server):
    """A 30 MB Content-Length against a 2 MB limit: the answer comes at once, with none of the body sent."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall((f"POST /v1/embed HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.token}\r\n"
                      f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {30 << 20}\r\n\r\n").encode())
        start = time.monotonic()
        reply = b""
        while b"body_too_large" not in reply and time.monotonic() - start < 10:
            chunk = sock.recv(65536)  # the headers and the body may come in separate packets
            if not chunk:
                break
            reply += chunk
        reply = reply.decode(errors="replace")
        waited = time.monotonic() - start
    assert reply.startswith("HTTP/1.1 413") and '"body_too_large"' in reply and waited < 5


def test_413_streamed_body_without_length_is_cut_off(server):
    sent = {"bytes": 0}

    def chunks():
        for _ in range(64):  # 4 MB in 64 KB chunks against the 2 MB limit
            sent["bytes"] += 65536
            yield b"\0" * 65536

    with server.client() as c:
        try:
            r = c.post("/v1/embed", content=chunks(), headers={"Content-Type": "application/json"})
        except httpx.HTTPError:  # the server may close while we still send: then nothing was accepted either
            return
    assert "over the limit of 2,097,152 bytes" in _error(r, 413, "body_too_large", "body")


def test_422_malformed_requests(server, astronaut_bytes):
    with server.client() as c:
        missing = c.post("/v1/verify", files=[("a", ("a.png", astronaut_bytes, "image/png"))])
        bad_b64 = c.post("/v1/embed", json={"images": ["not base64 at all!"]})
        not_json = c.post("/v1/embed", content=b"{not json", headers={"Content-Type": "application/json"})
        kind = c.post("/v1/embed", content=b"raw bytes", headers={"Content-Type": "image/png"})
        top_k = c.post("/v1/identify?top_k=0", files=[("image", ("a.png", astronaut_bytes, "image/png"))])
        strength = c.post("/v1/stylize?style=x&strength=nan", files=[("image", ("a.png", astronaut_bytes, "image/png"))])
        name = c.post("/v1/enroll", json={"name": "unknown", "images": [base64.b64encode(astronaut_bytes).decode()]})
        array = c.post("/v1/embed", json=["images"])
    assert "b: missing" in _error(missing, 422, "malformed_request", "b")
    assert "not an uploaded file or valid base64" in _error(bad_b64, 422, "malformed_request", "images[0]")
    assert "not valid JSON" in _error(not_json, 422, "malformed_request")
    assert "expected multipart/form-data or application/json" in _error(kind, 422, "malformed_request", "content-type")
    assert "top_k" in _error(top_k, 422, "malformed_request", "top_k")
    assert "strength" in _error(strength, 422, "malformed_request", "strength")
    assert "other than 'unknown'" in _error(name, 422, "bad_input", "name")
    assert "JSON object" in _error(array, 422, "malformed_request")


def test_503_with_retry_after_when_the_stylize_queue_is_full(serve_engines, astronaut_bytes):
    """Queue of 1: of 8 concurrent stylize requests some are refused at once, the others all succeed."""
    from facestyle.style.stylizer import list_styles

    style = list_styles(serve_engines)[0]["name"]
    s = Server(serve_engines, "--stylize-queue", "1")
    try:
        def one(_):
            return httpx.post(f"{s.url}/v1/stylize?style={style}&max_side=512",
                              files=[("image", ("a.png", astronaut_bytes, "image/png"))], timeout=120)

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(one, range(8)))
        refused = [r for r in replies if r.status_code == 503]
        assert refused and all(r.status_code == 200 for r in replies if r not in refused)
        assert len(refused) <= 6  # one running, one queued at least
        for r in refused:
            assert "queue full" in _error(r, 503, "overloaded") and r.headers["retry-after"] == "1"
        from facestyle.serve.metrics import parse_text

        m = parse_text(httpx.get(s.url + "/metrics").text)
        assert m['facestyle_http_errors_total{status="503",code="overloaded"}'] == len(refused)
    finally:
        assert s.stop() == 0
