"""Prometheus metrics in the text exposition format (0.0.4), written here: no client library needed.

Exposed at ``/metrics``: request latency histograms per endpoint, responses by endpoint and status,
errors by code and status, the micro-batcher's batch sizes, queue depths and requests in flight.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help: str, labels: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        out += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return out


class Gauge:
    """A gauge read at scrape time from a callable per label set (queue depths, requests in flight)."""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self._readers: dict[tuple[str, ...], Callable[[], float]] = {}

    def read_from(self, reader: Callable[[], float], *labels: str) -> None:
        self._readers[labels] = reader

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        out += [f"{self.name}{_labels(self.label_names, k)} {_number(r())}" for k, r in sorted(self._readers.items())]
        return out


class Histogram:
    def __init__(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], list] = {}  # labels -> [bucket counts..., sum, count]
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.setdefault(labels, [0] * len(self.buckets) + [0.0, 0])
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
            series[-2] += value
            series[-1] += 1

    def count(self, *labels: str) -> int:
        with self._lock:
            return self._series.get(labels, [0] * (len(self.buckets) + 2))[-1]

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, series in items:
            for bound, n in zip(self.buckets, series):
                le = f'le="{_number(bound)}"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, labels, le)} {n}")
            le = 'le="+Inf"'
            out.append(f"{self.name}_bucket{_labels(self.label_names, labels, le)} {series[-1]}")
            out.append(f"{self.name}_sum{_labels(self.label_names, labels)} {_number(series[-2])}")
            out.append(f"{self.name}_count{_labels(self.label_names, labels)} {series[-1]}")
        return out


class Metrics:
    """Every metric the service exposes."""

    def __init__(self):
        self.latency = Histogram("facestyle_http_request_duration_seconds", "Request latency by endpoint.",
                                 LATENCY_BUCKETS_S, ("method", "endpoint"))
        self.responses = Counter("facestyle_http_responses_total", "Responses by endpoint and status.",
                                 ("method", "endpoint", "status"))
        self.errors = Counter("facestyle_http_errors_total", "Error responses by status and error code.",
                              ("status", "code"))
        self.batch_size = Histogram("facestyle_batch_size", "Items per micro-batch, by batcher.", BATCH_BUCKETS,
                                    ("batcher",))
        self.queue_depth = Gauge("facestyle_queue_depth", "Items waiting in a batcher's queue.", ("batcher",))
        self.in_flight = Gauge("facestyle_http_requests_in_flight", "Requests being served now.")

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.latency, self.responses, self.errors, self.batch_size, self.queue_depth, self.in_flight):
            lines += metric.render()
        return "\n".join(lines) + "\n"


def parse_text(text: str) -> dict[str, float]:
    """``{"name{labels}": value}`` from the exposition text (for tests and the load benchmark)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out
