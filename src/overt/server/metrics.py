"""Operational metrics in the Prometheus text exposition format (version 0.0.4), by hand.

Counters, gauges and histograms with fixed label names, kept in memory per process and
rendered by :meth:`Metrics.render` for ``GET /metrics``. Labels are bounded by construction:
method, route *template* (never a raw path, which would carry account ids), status code and
a delivery channel — nothing a client can make unbounded.

This module knows no web framework, no storage and never sees an account, device or envelope.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value):
        return str(int(value))
    return repr(value)


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def _key(self, labels: Sequence[str]) -> LabelValues:
        if len(labels) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}")
        return tuple(labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterable[str]:  # pragma: no cover - overridden
        return ()


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[str]:
        if not self._values and not self.label_names:
            yield f"{self.name} 0"
        for key, value in sorted(self._values.items()):
            yield f"{self.name}{_labels(self.label_names, key)} {_number(value)}"


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        self._value -= amount

    @property
    def value(self) -> float:
        return self._value

    def samples(self) -> Iterable[str]:
        yield f"{self.name} {_number(self._value)}"


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        super().__init__(name, help_text, labels)
        self._bounds = (*sorted(buckets), math.inf)
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        counts = self._counts.setdefault(key, [0] * len(self._bounds))
        for i, bound in enumerate(self._bounds):
            if value <= bound:
                counts[i] += 1
        self._sums[key] = self._sums.get(key, 0.0) + value

    def samples(self) -> Iterable[str]:
        for key, counts in sorted(self._counts.items()):
            for bound, count in zip(self._bounds, counts, strict=True):
                le = f'le="{_number(bound)}"'
                yield f"{self.name}_bucket{_labels(self.label_names, key, le)} {count}"
            labels = _labels(self.label_names, key)
            yield f"{self.name}_sum{labels} {_number(self._sums[key])}"
            yield f"{self.name}_count{labels} {counts[-1]}"


class Metrics:
    """The relay server's metrics."""

    def __init__(self) -> None:
        self.requests = Counter(
            "overt_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
        )
        self.request_seconds = Histogram(
            "overt_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            ("route",),
        )
        self.messages_relayed = Counter(
            "overt_messages_relayed_total", "Envelopes accepted and stored for delivery."
        )
        self.deliveries = Counter(
            "overt_deliveries_total",
            "Envelopes handed to recipient devices (repeats of unacknowledged mail included).",
            ("channel",),
        )
        self.acknowledged = Counter(
            "overt_acknowledged_total", "Envelopes removed from mailboxes by acknowledgement."
        )
        self.mailbox_depth = Histogram(
            "overt_mailbox_depth",
            "Pending envelopes of a device's mailbox, observed when the device connects.",
            (0, 1, 10, 100, 1000, 10_000),
        )
        self.websocket_connections = Gauge(
            "overt_websocket_connections", "Authenticated WebSocket connections open now."
        )

    def _all(self) -> tuple[_Metric, ...]:
        return (
            self.requests,
            self.request_seconds,
            self.messages_relayed,
            self.deliveries,
            self.acknowledged,
            self.mailbox_depth,
            self.websocket_connections,
        )

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all():
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
