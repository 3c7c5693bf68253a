"""Read the ranking service's served-feature samples back from their Kafka topic.

No consumer group: the job assigns every partition, reads from the start to the end offsets
it saw when it began, and keeps the records in its time range (the topic's retention bounds
how far back it can look). A record that does not decode is counted, never fatal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

REQUIRED = ("request_id", "user_id", "ts", "item_ids", "user", "item")


@dataclass
class Samples:
    """The decoded samples in range, and how many records were read or refused."""

    records: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0
    malformed: int = 0


def read_samples(
    bootstrap: str,
    topic: str,
    since_ts: float,
    until_ts: float,
    max_samples: int,
    timeout_s: float = 20.0,
) -> Samples:
    """Samples with ``since_ts <= ts < until_ts`` (the latest ``max_samples`` of them)."""
    from kafka import KafkaConsumer, TopicPartition

    out = Samples()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
        consumer_timeout_ms=1000, request_timeout_ms=int(timeout_s * 1000) + 1000,
    )  # fmt: skip
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return out
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(consumer.position(tp) < end[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=500).values():
                for msg in batch:
                    _keep(msg.value, since_ts, until_ts, out)
    finally:
        consumer.close()
    out.records.sort(key=lambda r: float(r["ts"]))
    out.records = out.records[-max_samples:] if max_samples > 0 else []
    return out


def _keep(raw: bytes, since_ts: float, until_ts: float, out: Samples) -> None:
    out.read += 1
    try:
        rec = orjson.loads(raw)
        ok = isinstance(rec, dict) and all(k in rec for k in REQUIRED)
        ts = float(rec["ts"]) if ok else 0.0
    except (orjson.JSONDecodeError, TypeError, ValueError):
        ok = False
    if not ok:
        out.malformed += 1
        return
    if since_ts <= ts < until_ts:
        out.records.append(rec)
