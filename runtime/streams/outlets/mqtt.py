"""Events published to an MQTT broker (paho-mqtt 2): ``<prefix>/<source>/events`` (QoS 1) for every event and a
retained ``<prefix>/<source>/present`` (QoS 1), the tracks in view now, for Home Assistant or Node-RED; the
retained ``<prefix>/status`` is ``online`` while the outlet is connected and ``offline`` after (the broker
publishes it as the client's will when the connection is lost), so that stale ``present`` lists can be told.

Events wait in the outlet's queue while the broker is away (the oldest dropped beyond the bound, and counted)
and each is counted sent when the broker acknowledged it. ``present`` is kept aside, newest only, so it is never
dropped: after an outage the broker gets the state of now.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ...errors import BadInputError, MissingDependencyError
from .payload import event_payload, topic_safe
from .queued import DEFAULT_QUEUE_SIZE, DROPPED, SENT, QueuedOutlet

PORTS = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_PREFIX = "facestyle"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    prefix: str
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """``mqtt://[user:password@]host[:port]/prefix`` (``mqtts://`` for TLS); the prefix defaults to facestyle."""
    parts = urlsplit(url)
    expected = "expected mqtt://[user:password@]host[:port]/prefix or mqtts://..."
    if parts.scheme not in PORTS or not parts.hostname:
        raise BadInputError(f"MQTT URL {url!r}: {expected}")
    try:
        port = parts.port or PORTS[parts.scheme]
    except ValueError as error:
        raise BadInputError(f"MQTT URL {url!r}: {error}; {expected}") from None
    tail = url.split(parts.netloc, 1)[1]  # the path with any ?query or #fragment: no topic holds them
    prefix = unquote(tail).strip("/") or DEFAULT_PREFIX
    if any(c in prefix for c in "+#?") or "//" in prefix:
        raise BadInputError(f"MQTT URL {url!r}: the prefix {prefix!r} must be topic levels without + # ? or empty levels")
    return BrokerAddress(parts.hostname, port, prefix, parts.scheme == "mqtts",
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None)


def _paho():
    try:
        import paho.mqtt.client as client
    except ImportError:
        raise MissingDependencyError("--mqtt needs paho-mqtt: pip install 'facestyle[mqtt]'") from None
    return client


class Mqtt(QueuedOutlet):
    """Publishes each event to ``<prefix>/<source>/events`` and keeps ``<prefix>/<source>/present`` (retained)
    up to date. ``reconnect`` = (first, longest) wait in seconds between tries to reach the broker again."""

    kind = "mqtt"

    def __init__(self, url: str, *, queue_size: int = DEFAULT_QUEUE_SIZE, keepalive: int = 30,
                 reconnect: tuple[float, float] = (1.0, 30.0)):
        self.address = parse_mqtt_url(url)
        client = _paho()
        shown = url.replace(f":{self.address.password}@", ":***@") if self.address.password else url
        super().__init__(shown, queue_size)
        self._present: dict[str, dict[int, str | None]] = {}  # per source: track -> identity, on the caller's side
        self._present_due: dict[str, bytes] = {}  # per topic: the newest present not yet published
        self._acked: set[int] = set()  # message ids acknowledged and not yet seen by the publish waiting for them
        self._unawaited: set[int] = set()  # ids of status messages: nobody waits, so they must not stay in _acked
        self._connected = False
        self._link = threading.Condition()
        self._client = self._connect(client, keepalive, reconnect)
        self._start()

    def _connect(self, paho, keepalive: int, reconnect):
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        client.on_connect, client.on_disconnect, client.on_publish = self._on_connect, self._on_disconnect, self._on_publish
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set()
        client.reconnect_delay_set(*reconnect)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.connect_async(self.address.host, self.address.port, keepalive)  # connects on its thread: never waits here
        client.loop_start()
        return client

    @property
    def status_topic(self) -> str:
        return f"{self.address.prefix}/status"

    def topic(self, source: str, leaf: str) -> str:
        return f"{self.address.prefix}/{topic_safe(source)}/{leaf}"

    def _prepare(self, event):
        present = self._present.setdefault(event.source, {})
        if event.event == "track_end":
            present.pop(event.track, None)
        elif event.event in ("source_end", "source_lost"):
            present.clear()
        elif event.track is not None:
            present[event.track] = event.identity
        listing = [{"track": t, "identity": name} for t, name in sorted(present.items())]
        return event, json.dumps(event_payload(event)).encode(), json.dumps(listing).encode()

    def _deliver(self, item) -> str:
        event, body, present = item
        outcome = self._publish(self.topic(event.source, "events"), body, retain=False)
        with self._link:  # the newest present of this source, published after the events before it
            self._present_due[self.topic(event.source, "present")] = present
        while self._present_due and outcome == SENT:
            with self._link:
                topic, latest = self._present_due.popitem()
            if self._publish(topic, latest, retain=True) != SENT:
                with self._link:
                    self._present_due.setdefault(topic, latest)
                break
        return outcome

    def _publish(self, topic: str, payload: bytes, retain: bool) -> str:
        """Once connected, publish with QoS 1 and wait for the broker's acknowledgement (paho sends it again
        after a reconnect); DROPPED if the outlet closes first."""
        with self._link:
            self._link.wait_for(lambda: self._connected or self._stopping.is_set())
            if not self._connected:
                return DROPPED
        info = self._client.publish(topic, payload, qos=1, retain=retain)  # not under _link: paho calls back under its locks
        with self._link:
            self._link.wait_for(lambda: info.mid in self._acked or self._stopping.is_set())
            if info.mid not in self._acked:
                return DROPPED
            self._acked.discard(info.mid)
            return SENT

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:  # its acknowledgement comes after this callback returns, on this thread
            self._unawaited.add(client.publish(self.status_topic, "online", qos=1, retain=True).mid)
        with self._link:
            self._connected = not reason.is_failure
            self._link.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        with self._link:
            self._connected = False
            self._link.notify_all()

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        with self._link:
            if mid in self._unawaited:
                self._unawaited.discard(mid)
            else:  # a stale id would pass a later message with the same (reused) id as acknowledged
                self._acked.add(mid)
            self._link.notify_all()

    def _wake(self) -> None:
        with self._link:
            self._link.notify_all()

    def _stop(self) -> None:
        if self._connected:  # a clean disconnection sends no will
            try:
                self._client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(2.0)
            except (RuntimeError, ValueError):  # the connection went meanwhile: the broker sent the will
                pass
        self._client.disconnect()
        self._client.loop_stop()
