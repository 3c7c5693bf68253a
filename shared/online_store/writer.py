"""Write side of the online store: events (ingest worker, bootstrap replay), catalog, profiles."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
from redis.cluster import RedisCluster

from shared.event_semantics import EVENT_SEMANTICS, EventSemantics
from shared.events import Event
from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.online_store import keys
from shared.online_store.catalog import stage_items, stage_users, static_item
from shared.online_store.config import DEFAULT_STORE_CONFIG, StoreConfig
from shared.online_store.counter_layout import CounterLayout
from shared.online_store.effects import script_rows
from shared.online_store.ingest_calls import (
    ApplyResult,
    ClusterIngest,
    NodeIngest,
    PreparedBatch,
)
from shared.online_store.types import ItemRecord, UserProfile
from shared.platform.redis_client import SyncRedis

__all__ = ["ApplyResult", "GenreLookup", "PreparedBatch", "StoreWriter"]

log = logging.getLogger(__name__)


class GenreLookup:
    """Item id → genre columns for affinity updates, cached and dropped when the catalog moves."""

    def __init__(self, client: SyncRedis, max_size: int = 1_000_000) -> None:
        self.client = client
        self.max_size = max_size
        self._cache: dict[str, tuple[int, ...]] = {}
        self._version: bytes | None = None

    def get(self, item_ids: set[str]) -> dict[str, tuple[int, ...]]:
        """Genre columns of the known items among ``item_ids`` (one round trip)."""
        missing = [i for i in item_ids if i not in self._cache]
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys.CATALOG_VERSION)
        if missing:
            keys.mget(pipe, [keys.item(i) for i in missing])
        replies = pipe.execute()
        if replies[0] != self._version:
            self._cache.clear()
            self._version = replies[0]
            if len(missing) < len(item_ids):  # cached entries may be stale: fetch them all
                return self.get(item_ids)
        if len(self._cache) + len(missing) > self.max_size:
            self._cache.clear()
        for item_id, raw in zip(missing, replies[1] if missing else [], strict=True):
            if raw is not None:
                self._cache[item_id] = static_item(_decode_genres(item_id, raw)).genre_cols
        return {i: self._cache[i] for i in item_ids if i in self._cache}


def _decode_genres(item_id: str, raw: bytes) -> ItemRecord:
    return ItemRecord(item_id=item_id, genres=tuple(orjson.loads(raw).get("g", ())))


class StoreWriter:
    """Applies events idempotently (one atomic script call per batch on a single Redis, one per
    slot on a cluster: ``ingest_calls``) and writes the catalog."""

    def __init__(
        self,
        client: SyncRedis,
        config: FeatureConfig = DEFAULT_CONFIG,
        store: StoreConfig = DEFAULT_STORE_CONFIG,
        semantics: EventSemantics = EVENT_SEMANTICS,
    ) -> None:
        self.client = client
        self.config = config
        self.store = store
        self.semantics = semantics
        self.layout = CounterLayout(config)
        self.genres = GenreLookup(client, store.catalog_cache_size)
        header = orjson.dumps(
            [
                store.dedupe_ttl_s,
                max(store.history_cap, config.hist_len),
                store.trending_half_life_s,
                store.impressions_ttl_s,
                store.user_ttl_s,
                store.unknown_item_ttl_s,
                store.seen_cap,
                store.trending_cap,
                store.segment_cap,
                store.segment_half_life_s,
                store.seen_filter_blocks,
                store.seen_filter_hashes,
                store.seen_filter_capacity,
                *map(int, self.layout.lua_args()),
            ]
        )
        self._calls: NodeIngest | ClusterIngest = (
            ClusterIngest(client, header)
            if isinstance(client, RedisCluster)
            else NodeIngest(client, header)
        )

    def apply_events(self, events: Sequence[Event]) -> ApplyResult:
        """Apply a batch; events whose id was applied before (within the TTL) are skipped."""
        if not events:
            return ApplyResult(0, 0, b"")
        return self.apply_prepared(self.prepare(events))

    def prepare(self, events: Sequence[Event]) -> PreparedBatch:
        """The script input of a non-empty batch (reads the catalog's genres: one round trip).
        Split from the write so a worker can prepare one batch while the last is written.
        """
        genres = self.genres.get({e.item_id for e in events})
        return self._calls.prepare(script_rows(events, genres, self.config, self.semantics))

    def apply_prepared(self, batch: PreparedBatch) -> ApplyResult:
        """Run the ingest script on a prepared batch (atomic per call)."""
        return self._calls.apply(batch)

    def put_items(self, items: Sequence[ItemRecord]) -> None:
        """Add or replace catalog records."""
        pipe = self.client.pipeline(transaction=False)
        stage_items(pipe, items)
        pipe.execute()

    def put_users(self, profiles: Sequence[UserProfile]) -> None:
        """Add or replace user profiles (their event-derived state is kept)."""
        pipe = self.client.pipeline(transaction=False)
        stage_users(pipe, profiles)
        pipe.execute()
