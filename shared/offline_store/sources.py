"""Where the offline builders read events from: the Parquet log, or a table already in memory."""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

import duckdb
import pyarrow as pa

from shared.offline_store.log import EventLog

EventSource: TypeAlias = str | Path | EventLog | pa.Table
"""The log folder, an :class:`EventLog` (deduplicated by event_id there), or a clean table."""


def connect(source: EventSource) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with an ``events`` view over ``source``."""
    if isinstance(source, pa.Table):
        con = duckdb.connect()
        con.register("events", source)
        return con
    log = source if isinstance(source, EventLog) else EventLog(source)
    return log.connect()


def load(source: EventSource, end: float | None = None) -> pa.Table:
    """The events of ``source`` (those before ``end`` when given), as an Arrow table."""
    if isinstance(source, pa.Table):
        return source
    log = source if isinstance(source, EventLog) else EventLog(source)
    return log.read(end=end)
