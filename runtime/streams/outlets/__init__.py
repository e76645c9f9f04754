"""A watch's events sent on to other systems: a webhook (HTTP POST of JSON) and MQTT (Home Assistant, Node-RED).

>>> with EventOutlets([Webhook("http://hub:8123/api/webhook/door"), Mqtt("mqtt://broker/home/faces")]) as outlets:
...     for item in outlets.relay(watch(["door.mp4"], analyzer, gallery)):
...         ...                       # the video loop; events are queued for the outlets, never waited for
>>> outlets.counts()                  # [{"outlet": "webhook http://...", "sent": 12, "dropped": 0, ...}, ...]

An outlet (:class:`Webhook`, :class:`Mqtt`) has ``send(event)``, which returns at once, ``counts()`` and
``close(timeout)``, which delivers what is queued for up to ``timeout`` seconds and counts the rest dropped.
"""

from __future__ import annotations

import time

from ..events import Event, FrameResult
from .chips import TrackChips
from .mqtt import Mqtt, parse_mqtt_url
from .queued import DEFAULT_QUEUE_SIZE, QueuedOutlet
from .webhook import Webhook, check_webhook_url

__all__ = ["DEFAULT_QUEUE_SIZE", "EventOutlets", "Mqtt", "QueuedOutlet", "Webhook", "check_outlet_urls", "open_outlets"]


class EventOutlets:
    """The events among a watch's items, to every outlet: call it with each item (a sink, as
    :class:`facestyle.streams.JsonLines`), or iterate :meth:`relay` around the watch. ``chips``: each event of a
    track carries its best face as a base64 JPEG, ``"chip"`` (the watch must keep the frames: ``keep_pixels=True``)."""

    def __init__(self, outlets=(), *, chips: bool = False):
        self.outlets = list(outlets)
        self._chips = TrackChips() if chips else None

    def __bool__(self) -> bool:
        return bool(self.outlets)

    def __call__(self, item) -> None:
        if self._chips is not None and isinstance(item, (Event, FrameResult)):
            self._send(self._chips.take(item))
        elif isinstance(item, Event):
            self._send([item])

    def _send(self, events) -> None:
        for event in events:
            for outlet in self.outlets:
                outlet.send(event)

    def relay(self, items):
        """Yields ``items`` unchanged, each event sent on first."""
        for item in items:
            self(item)
            yield item

    def counts(self) -> list[dict]:
        return [{"outlet": outlet.name, **outlet.counts()} for outlet in self.outlets]

    def close(self, timeout: float = 10.0) -> list[dict]:
        """The outlets deliver what they hold for up to ``timeout`` seconds in all; returns :meth:`counts`."""
        if self._chips is not None:
            self._send(self._chips.flush())
        deadline = time.monotonic() + timeout  # shared: the outlets were all delivering meanwhile
        for outlet in self.outlets:
            outlet.close(max(deadline - time.monotonic(), 0.0))
        return self.counts()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_outlet_urls(webhooks=(), mqtt=()) -> None:
    """A BadInputError naming the first webhook or MQTT URL that is not one."""
    for url in webhooks or ():
        check_webhook_url(url)
    for url in mqtt or ():
        parse_mqtt_url(url)


def open_outlets(webhooks=(), mqtt=(), *, queue_size: int = DEFAULT_QUEUE_SIZE, chips: bool = False) -> EventOutlets:
    """Outlets for webhook and MQTT URLs, every URL checked before any outlet starts."""
    webhooks, mqtt = list(webhooks or ()), list(mqtt or ())
    check_outlet_urls(webhooks, mqtt)
    return EventOutlets([Webhook(url, queue_size=queue_size) for url in webhooks]
                        + [Mqtt(url, queue_size=queue_size) for url in mqtt], chips=chips)
