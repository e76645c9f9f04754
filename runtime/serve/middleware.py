"""The ASGI layer in front of the routes: draining, load limits, token, body limit and timeout, metrics.

One pure ASGI middleware, so that it sees every request (including those it refuses) and can
refuse an oversized body from its Content-Length header before reading any of it, or stop reading
a body without one as soon as it passes the limit. Load: at most ``max_in_flight`` requests at once,
and at most ``max_per_client`` from one client address, so that a few slow clients cannot take every
slot; the probes (/healthz, /readyz, /metrics) are never counted nor refused for load. A body must
arrive within ``body_timeout_s`` (408 otherwise). Whatever the app raises becomes one JSON error
here, so the connection stays usable; a client that leaves first is counted as 499, without a log.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time

from starlette.requests import ClientDisconnect

from .errors import (
    CLIENT_GONE,
    BodyTooLargeError,
    OverloadedError,
    RequestTimeoutError,
    UnauthorizedError,
    error_response_parts,
    status_of,
)
from .metrics import Metrics

PUBLIC = ("/", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/favicon.ico")
PUBLIC_PREFIXES = ("/page/", "/docs/")
PROBES = ("/healthz", "/readyz")
UNCOUNTED = PROBES + ("/metrics",)  # never refused for load: a load balancer must see a busy server as alive
log = logging.getLogger("facestyle.serve")


class _BodyFailed(Exception):
    """Raised into the app from ``receive``: the body is over the limit or late; ``error`` is the answer."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class ServeState:
    """What the middleware and the server share: draining flag and requests in flight."""

    def __init__(self, token: str | None = None, max_body_bytes: int = 20 << 20, max_in_flight: int = 512,
                 max_per_client: int = 64, body_timeout_s: float = 60.0):
        self.token = token.encode() if token else None
        self.max_body_bytes = int(max_body_bytes)
        self.max_in_flight = int(max_in_flight)
        self.max_per_client = int(max_per_client)
        self.body_timeout_s = float(body_timeout_s)
        self.draining = False
        self.in_flight = 0
        self._per_client: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, client: str) -> str | None:
        """Count one request of ``client`` in flight; or say why not (the server or this client is full)."""
        with self._lock:
            if self.in_flight >= self.max_in_flight:
                return f"{self.max_in_flight} requests in flight; retry shortly"
            mine = self._per_client.get(client, 0)
            if mine >= self.max_per_client:
                return f"{mine} requests of this client in flight (--max-in-flight-per-client); retry shortly"
            self.in_flight += 1
            self._per_client[client] = mine + 1
        return None

    def leave(self, client: str) -> None:
        with self._lock:
            self.in_flight -= 1
            left = self._per_client.pop(client) - 1
            if left:
                self._per_client[client] = left

    def authorised(self, headers: dict[bytes, bytes]) -> bool:
        if self.token is None:
            return True
        given = headers.get(b"authorization", b"")
        if given[:7].lower() == b"bearer ":
            given = given[7:].strip()
        else:
            given = headers.get(b"x-api-key", b"").strip()
        # Constant time whatever the given token's length: compare digests of equal length.
        return hmac.compare_digest(_digest(given), _digest(self.token)) and bool(given)


def _digest(value: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(value).digest()


async def _send_error(send, error: Exception, close: bool = False) -> int:
    status, body, headers = error_response_parts(error)
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
    return status


class ServeMiddleware:
    def __init__(self, app, state: ServeState, metrics: Metrics):
        self.app, self.state, self.metrics = app, state, metrics
        metrics.in_flight.read_from(lambda: self.state.in_flight)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        start = time.perf_counter()
        seen = {"status": 500, "code": None}

        async def send_observed(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body" and seen["status"] >= 400 and seen["code"] is None:
                try:
                    seen["code"] = json.loads(message.get("body", b"") or b"{}")["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    seen["code"] = "unknown"
            await send(message)

        try:
            await self._handle(scope, receive, send_observed, path, seen)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or ("/page/*" if path.startswith("/page/") else "unmatched")
            status = str(seen["status"])
            self.metrics.latency.observe(time.perf_counter() - start, method, endpoint)
            self.metrics.responses.inc(method, endpoint, status)
            if seen["status"] >= 400:
                self.metrics.errors.inc(status, seen["code"] or "unknown")

    async def _handle(self, scope, receive, send, path, seen):
        state = self.state
        headers = dict(scope.get("headers") or [])
        if state.draining and path not in PROBES:
            return await _send_error(send, OverloadedError("server is shutting down; send the request elsewhere"), True)
        if not (path in PUBLIC or path.startswith(PUBLIC_PREFIXES)) and not state.authorised(headers):
            missing = b"authorization" not in headers and b"x-api-key" not in headers
            why = "missing token (send Authorization: Bearer TOKEN)" if missing else "wrong token"
            return await _send_error(send, UnauthorizedError(f"{path}: {why}", "authorization"))
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > state.max_body_bytes:
            return await _send_error(send, self._too_large(int(length)), close=True)
        if path in UNCOUNTED:
            return await self._guarded(scope, receive, send, seen)
        client = (scope.get("client") or ("unknown",))[0]
        refused = state.enter(client)
        if refused:
            return await _send_error(send, OverloadedError(refused))
        try:
            await self._guarded(scope, receive, send, seen)
        finally:
            state.leave(client)

    def _too_large(self, size: int | None) -> BodyTooLargeError:
        limit = self.state.max_body_bytes
        got = f"{size:,} bytes" if size is not None else "more than that"
        return BodyTooLargeError(f"request body: {got}, over the limit of {limit:,} bytes (--max-body-mb)", "body")

    async def _guarded(self, scope, receive, send, seen):
        """Run the app with a checked body; whatever it raises is answered here (or counted, if the client left)."""
        body = _CheckedBody(receive, self.state.max_body_bytes, self.state.body_timeout_s, self._too_large)
        started = False

        async def guarded_send(message):
            nonlocal started
            if body.failure is not None:
                return  # the app's answer to a cut-off body is replaced by the 413 / 408
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, guarded_send)
            failure = body.failure
        except Exception as error:  # noqa: BLE001 - answered below, so the connection stays usable
            failure = body.failure or error
        if failure is None:
            return
        if body.disconnected or isinstance(failure, ClientDisconnect):
            seen["status"], seen["code"] = CLIENT_GONE.status, CLIENT_GONE.code
            return
        if status_of(failure).status >= 500 and status_of(failure).status != 503:
            log.error("%s %s: %s: %s", scope["method"], scope["path"], type(failure).__name__, failure, exc_info=failure)
        if not started:
            await _send_error(send, failure, close=body.failure is not None)


class _CheckedBody:
    """``receive`` for the app: counts the body's bytes against the limit, gives it ``timeout_s`` in all to
    arrive, and notes a client's disconnect. Past the limit or the time it raises into the app."""

    def __init__(self, receive, max_bytes: int, timeout_s: float, too_large):
        self._receive, self.max_bytes, self.too_large = receive, max_bytes, too_large
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.received, self.complete = 0, False
        self.failure: Exception | None = None
        self.disconnected = False

    async def receive(self):
        if self.complete:  # the body is in: the app now only waits for a disconnect, as long as it likes
            message = await self._receive()
        else:
            try:
                message = await asyncio.wait_for(self._receive(), max(0.0, self.deadline - time.monotonic()))
            except asyncio.TimeoutError:
                self.failure = RequestTimeoutError(
                    f"request body: not received within {self.timeout_s:g} s (--body-timeout)", "body")
                raise _BodyFailed(self.failure) from None
        if message["type"] == "http.disconnect":
            self.disconnected = not self.complete or self.disconnected
            return message
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
            if self.received > self.max_bytes:
                self.failure = self.too_large(None)
                raise _BodyFailed(self.failure)
        return message
