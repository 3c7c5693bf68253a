"""The offline event log: Parquet files partitioned by date, DuckDB views, point-in-time sets.

- ``layout``: where files go and what columns they have.
- ``writer``: durable appends (fsync + atomic rename), used by the offline sink.
- ``log``: DuckDB views over the files (``events_raw``; ``events`` deduplicated by event_id).
- ``pit``: the point-in-time training-set builder (features strictly before each label).
- ``labels``: impressions labelled with what followed them (for rankers).
- ``cli``: ``python -m shared.offline_store`` writes a training set to Parquet.
"""

from shared.offline_store.item_genres import catalog_item_genres, read_item_genres
from shared.offline_store.labels import impression_labels
from shared.offline_store.layout import EVENT_SCHEMA, events_glob, partition_dir
from shared.offline_store.log import EventLog
from shared.offline_store.pit import FEATURE_COLUMNS, build_training_set, to_feature_records
from shared.offline_store.sources import EventSource
from shared.offline_store.writer import ParquetEventWriter

__all__ = [
    "EVENT_SCHEMA",
    "FEATURE_COLUMNS",
    "EventLog",
    "EventSource",
    "ParquetEventWriter",
    "build_training_set",
    "catalog_item_genres",
    "events_glob",
    "impression_labels",
    "partition_dir",
    "read_item_genres",
    "to_feature_records",
]
