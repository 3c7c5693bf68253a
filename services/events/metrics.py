"""Prometheus metrics of the events API."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.platform.metrics import LATENCY_BUCKETS

EVENTS_ACCEPTED = Counter(
    "cascade_events_accepted_total",
    "Events the broker acknowledged (answered 202), by event type.",
    ["type"],
)
EVENTS_REJECTED = Counter(
    "cascade_events_rejected_total",
    "Events not accepted, by reason (invalid: 422, unavailable: 503).",
    ["reason"],
)
PRODUCE_LATENCY = Histogram(
    "cascade_events_produce_duration_seconds",
    "Time from handing a batch to the producer until the broker acknowledged all of it.",
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "cascade_events_batch_size",
    "Events per accepted request.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
