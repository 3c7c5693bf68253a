"""DuckDB over the Parquet event log.

Two views on every connection:

- ``events_raw``: every row of every published file, with ``date`` (from the folder) and the
  Kafka partition/offset it was read from. After a sink crash an event can appear twice.
- ``events``: one row per ``event_id`` (the first one accepted), without the Kafka columns.
  Always query this one unless you are auditing the sink.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shared.offline_store.layout import EVENT_SCHEMA, events_glob, has_files

_DEDUP_SQL = """
CREATE OR REPLACE VIEW events AS
SELECT * EXCLUDE (kafka_partition, kafka_offset) FROM events_raw
QUALIFY row_number() OVER (
    PARTITION BY event_id
    ORDER BY accepted_ts NULLS LAST, kafka_partition NULLS LAST, kafka_offset NULLS LAST
) = 1
"""


class EventLog:
    """The offline event log under ``root`` (the sink's ``data_dir``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def connect(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection (new in-memory one unless given) with the two views.

        The file glob is expanded when a query runs, so files the sink publishes later are
        seen by later queries; a log that was empty at connect time needs a new connect().
        """
        con = con or duckdb.connect()
        if has_files(self.root):
            glob = events_glob(self.root).replace("'", "''")
            con.execute(
                "CREATE OR REPLACE VIEW events_raw AS SELECT * FROM read_parquet("
                f"'{glob}', hive_partitioning = true, union_by_name = true)"
            )
        else:
            empty = EVENT_SCHEMA.empty_table().append_column("date", pa.array([], pa.date32()))
            con.register("_empty_events", empty)
            con.execute("CREATE OR REPLACE VIEW events_raw AS SELECT * FROM _empty_events")
        con.execute(_DEDUP_SQL)
        return con

    def read(
        self, start: float | None = None, end: float | None = None, types: list[str] | None = None
    ) -> pa.Table:
        """Deduplicated events with ``start <= timestamp < end`` (either bound optional),
        optionally of some types only, ordered by timestamp then event_id."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if start is not None:
            where.append("timestamp >= ?")
            params.append(start)
        if end is not None:
            where.append("timestamp < ?")
            params.append(end)
        if types:
            where.append("list_contains(?, type)")
            params.append(types)
        sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY timestamp, event_id"
        con = self.connect()
        try:
            return con.sql(sql, params=params).to_arrow_table()
        finally:
            con.close()

    def count(self) -> int:
        """Number of distinct events in the log."""
        con = self.connect()
        try:
            row = con.execute("SELECT count(*) FROM events").fetchone()
            return int(row[0]) if row else 0
        finally:
            con.close()
