"""Layout of the Parquet event log: ``<root>/date=YYYY-MM-DD/part-<ms>-<uuid>.parquet``.

The date is the UTC day of the event's own ``timestamp`` (not of its arrival), so a query for a
day's events reads one folder; late events simply add a file to an older folder. Files being
written are hidden (``.part-*.tmp``) until an atomic rename publishes them.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("timestamp", pa.float64(), nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("position", pa.int32()),
        pa.field("accepted_ts", pa.float64()),
        # Where the sink read it: lets duplicates after a crash be told apart and audited.
        pa.field("kafka_partition", pa.int32()),
        pa.field("kafka_offset", pa.int64()),
    ]
)
"""Columns of every Parquet file (the ``date`` column comes from the folder name)."""

EVENT_FIELDS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)


def day_of(ts: float) -> str:
    """UTC calendar day of an epoch-seconds timestamp, as YYYY-MM-DD."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def partition_dir(root: str | Path, day: str) -> Path:
    """Folder of one day's files."""
    return Path(root) / f"date={day}"


def part_name(now: float | None = None) -> str:
    """A new file name: sortable by write time, unique across processes."""
    ms = int((now if now is not None else time.time()) * 1000)
    return f"part-{ms:013d}-{uuid.uuid4().hex}.parquet"


def events_glob(root: str | Path) -> str:
    """The glob matching every published file (never the hidden files being written)."""
    return str(Path(root) / "date=*" / "part-*.parquet")


def has_files(root: str | Path) -> bool:
    """True when at least one published file exists."""
    return any(Path(root).glob("date=*/part-*.parquet"))
