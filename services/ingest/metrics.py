"""Prometheus metrics of the ingest worker."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRESHNESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)

EVENTS = Counter(
    "cascade_ingest_events_total",
    "Events consumed, by type and outcome (applied, duplicate, rejected: dead-lettered).",
    ["type", "outcome"],
)
DEAD_LETTERS = Counter(
    "cascade_ingest_dead_letters_total", "Malformed messages sent to the dead-letter topic."
)
BATCH_WRITE = Histogram(
    "cascade_ingest_batch_write_seconds",
    "Time of one batch's Redis write (one atomic script call).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_SIZE = Histogram(
    "cascade_ingest_batch_records",
    "Records per consumed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
FRESHNESS = Histogram(
    "cascade_feature_freshness_seconds",
    "Time from the events API accepting an event to its effect being readable in Redis.",
    buckets=FRESHNESS_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "cascade_ingest_consumer_lag", "Records between the group's position and the partition ends."
)
