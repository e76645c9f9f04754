"""Events POSTed as JSON to an HTTP(S) URL, from the outlet's thread (standard library only)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit

from ...errors import BadInputError
from .payload import event_payload, masked
from .queued import DEFAULT_QUEUE_SIZE, DROPPED, FAILED, SENT, QueuedOutlet

RETRY_STATUS = {408, 429}  # besides 5xx: the receiver asks to be tried again


def check_webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(f"webhook URL {url!r}: expected http://host[:port]/path or https://...")
    try:
        parts.port  # noqa: B018 (reading it checks the port)
    except ValueError as error:
        raise BadInputError(f"webhook URL {url!r}: {error}") from None
    return url


class Webhook(QueuedOutlet):
    """POSTs each event's JSON to ``url`` (``http://user:password@host/...``: with basic authentication, the
    password masked in the outlet's name). A connection error, a timeout (``timeout`` s per request), a 5xx, 408
    or 429 answer is tried again after ``backoff`` s, doubling up to ``max_backoff``, ``retries`` times; then,
    or on any other non-2xx answer, the event is counted failed."""

    kind = "webhook"

    def __init__(self, url: str, *, queue_size: int = DEFAULT_QUEUE_SIZE, timeout: float = 5.0, retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0):
        parts = urlsplit(check_webhook_url(url))
        super().__init__(masked(url), queue_size)
        self._url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        self._headers = {"Content-Type": "application/json", "User-Agent": "facestyle"}
        if parts.username is not None:
            login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(login).decode("ascii")
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self._start()

    def _prepare(self, event) -> bytes:
        return json.dumps(event_payload(event)).encode()

    def _join_timeout(self) -> float:
        return self.timeout + 1.0

    def _deliver(self, body: bytes) -> str:
        for attempt in range(self.retries + 1):
            if attempt and self._stopping.wait(min(self.backoff * 2 ** (attempt - 1), self.max_backoff)):
                return DROPPED
            outcome = self._post(body)
            if outcome is not None:
                return outcome
        return FAILED

    def _post(self, body: bytes) -> str | None:
        """SENT, FAILED, or None: worth trying again."""
        request = urllib.request.Request(self._url, data=body, method="POST", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read()
                return SENT
        except urllib.error.HTTPError as error:
            return None if error.code >= 500 or error.code in RETRY_STATUS else FAILED
        except (OSError, ValueError):  # refused, reset, timed out, name not found
            return None
