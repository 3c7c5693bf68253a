"""Prometheus metrics of the offline sink."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_WRITTEN = Counter(
    "cascade_offline_sink_events_written_total", "Events written to Parquet, by type.", ["type"]
)
FILES_WRITTEN = Counter("cascade_offline_sink_files_total", "Parquet files published.")
DEAD_LETTERS = Counter(
    "cascade_offline_sink_dead_letters_total", "Malformed messages sent to the dead-letter topic."
)
FLUSH_DURATION = Histogram(
    "cascade_offline_sink_flush_duration_seconds",
    "Time to decode, write and fsync one buffered batch (before the offset commit).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FLUSH_SIZE = Histogram(
    "cascade_offline_sink_flush_records",
    "Records per flush.",
    buckets=(1, 10, 100, 500, 1000, 5000, 10_000, 50_000),
)
CONSUMER_LAG = Gauge(
    "cascade_offline_sink_consumer_lag", "Records on the topic not yet committed by the sink."
)
DISK_FREE = Gauge(
    "cascade_offline_sink_disk_free_bytes", "Free space on the file system of the Parquet log."
)
