"""The ASGI layer in front of the routes: draining, load limit, token, body limit, metrics.

One pure ASGI middleware, so that it sees every request (including those it refuses) and can
refuse an oversized body from its Content-Length header before reading any of it, or stop reading
a body without one as soon as it passes the limit.
"""

from __future__ import annotations

import hmac
import json
import threading
import time

from .errors import (
    BodyTooLargeError,
    OverloadedError,
    UnauthorizedError,
    error_response_parts,
)
from .metrics import Metrics

PUBLIC = ("/", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/favicon.ico")
PUBLIC_PREFIXES = ("/page/", "/docs/")
PROBES = ("/healthz", "/readyz")


class _TooLarge(Exception):
    pass


class ServeState:
    """What the middleware and the server share: draining flag and requests in flight."""

    def __init__(self, token: str | None = None, max_body_bytes: int = 20 << 20, max_in_flight: int = 512):
        self.token = token.encode() if token else None
        self.max_body_bytes = int(max_body_bytes)
        self.max_in_flight = int(max_in_flight)
        self.draining = False
        self.in_flight = 0
        self._lock = threading.Lock()

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
            await self._handle(scope, receive, send_observed, path)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or ("/page/*" if path.startswith("/page/") else "unmatched")
            status = str(seen["status"])
            self.metrics.latency.observe(time.perf_counter() - start, method, endpoint)
            self.metrics.responses.inc(method, endpoint, status)
            if seen["status"] >= 400:
                self.metrics.errors.inc(status, seen["code"] or "unknown")

    async def _handle(self, scope, receive, send, path):
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
        with state._lock:
            if state.in_flight >= state.max_in_flight:
                full = True
            else:
                full, state.in_flight = False, state.in_flight + 1
        if full:
            return await _send_error(send, OverloadedError(f"{state.max_in_flight} requests in flight; retry shortly"))
        try:
            await self._limited(scope, receive, send)
        finally:
            with state._lock:
                state.in_flight -= 1

    def _too_large(self, size: int | None) -> BodyTooLargeError:
        limit = self.state.max_body_bytes
        got = f"{size:,} bytes" if size is not None else "more than that"
        return BodyTooLargeError(f"request body: {got}, over the limit of {limit:,} bytes (--max-body-mb)", "body")

    async def _limited(self, scope, receive, send):
        """Run the app, counting body bytes as they arrive; past the limit, answer 413 instead."""
        received, over = 0, False
        started = False

        async def counted_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.state.max_body_bytes:
                    over = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            nonlocal started
            if over:
                return  # the app's answer to a cut-off body is replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await _send_error(send, self._too_large(None), close=True)
