"""Item genres for the offline builders (the event log holds ids only).

From a file (JSON ``{"item_id": ["Action", ...]}``, or a CSV/Parquet table with ``item_id`` and
``genres`` columns, genres as a list or ``|``-separated text), or from the online store's
catalog, the same records the ingest worker reads its affinity genres from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shared.online_store import keys
from shared.online_store.catalog import decode_item
from shared.platform.redis_client import cluster_from_env, create_redis

ItemGenres = dict[str, list[str]]


def read_item_genres(path: str | Path) -> ItemGenres:
    """Item id -> genre names from a ``.json``, ``.csv`` or ``.parquet`` file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        data = orjson.loads(p.read_bytes())
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a JSON object of item_id -> [genres]")
        return {str(k): [str(g) for g in v] for k, v in data.items()}
    if suffix in (".csv", ".parquet"):
        table = pacsv.read_csv(p) if suffix == ".csv" else pq.read_table(p)
        return _from_table(table, p)
    raise ValueError(f"{p}: item genres must be .json, .csv or .parquet")


def _from_table(table: pa.Table, path: Path) -> ItemGenres:
    missing = {"item_id", "genres"} - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: lacks column(s) {sorted(missing)}")
    out: ItemGenres = {}
    for item_id, genres in zip(
        table["item_id"].to_pylist(), table["genres"].to_pylist(), strict=True
    ):
        if isinstance(genres, str):
            genres = [g for g in genres.split("|") if g]
        out[str(item_id)] = [str(g) for g in genres or ()]
    return out


def catalog_item_genres(
    redis_url: str, chunk: int = 1000, cluster: bool | None = None
) -> ItemGenres:
    """Item id -> genre names of every item in the online store's catalog (``cluster``: a Redis
    Cluster; None: as ``CASCADE_REDIS_CLUSTER`` says)."""
    if cluster is None:
        cluster = cluster_from_env()
    client = create_redis(redis_url, timeout_s=30.0, cluster=cluster)
    try:
        ids = sorted(_text(m) for m in client.smembers(keys.CATALOG_IDS))
        out: ItemGenres = {}
        for part in _chunks(ids, chunk):
            for item_id, raw in zip(part, client.mget([keys.item(i) for i in part]), strict=True):
                if isinstance(raw, bytes):
                    out[item_id] = list(decode_item(item_id, raw).genres)
        return out
    finally:
        client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _chunks(ids: list[str], size: int) -> Iterator[list[str]]:
    for k in range(0, len(ids), size):
        yield ids[k : k + size]
