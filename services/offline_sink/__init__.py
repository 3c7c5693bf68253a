"""Offline sink: the ``events`` topic appended to date-partitioned Parquet files."""
