"""Read side of the online store: one round trip per call, vectorised decoding."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.counters import smoothed_rate
from shared.features.item import N_GENRES
from shared.features.records import ItemFeatures, UserFeatures
from shared.online_store import keys
from shared.online_store.catalog import (
    UNKNOWN_SEGMENT,
    CatalogColumns,
    decode_item,
    profile_from_hash,
    stage_items,
)
from shared.online_store.config import DEFAULT_STORE_CONFIG, StoreConfig
from shared.online_store.counter_layout import (
    TOTAL_CLICKS,
    TOTAL_IMPRESSIONS,
    TOTAL_INTERACTIONS,
    TOTAL_LIKES,
    CounterLayout,
)
from shared.online_store.effects import affinity_at
from shared.online_store.read_cache import CounterCache, ListCache
from shared.online_store.seen_filter import SeenFilter
from shared.online_store.types import ItemBatch, ItemRecord, LazyItemFeatures, UserState
from shared.platform.redis_client import AsyncRedis

_AFFINITY_FIELDS = [f"a{g}".encode() for g in range(N_GENRES)]
# Columns of OnlineStore.counter_features (what the read cache keeps per item).
_ITEM_SLOT_KEY = keys.ITEM_TAG.decode()  # any key of the item side names its slot
COUNTER_FEATURES = ("count_1h", "count_24h", "count_7d", "total", "likes", "clicks", "impressions")
_MAX_GROWTH = 900.0  # exponent cap of _decayed (2^1024 overflows a float)
# The top of a decaying set and its reference time (a string key, or a hash field when ARGV[2]
# names one) in one script call: a two-command pipeline cost 440 us of client CPU per read
# against 250 for one command (redis-py 8.1, 50 of 500 items; measured).
_DECAYING_TOP = """
local ref = ARGV[2] == '' and redis.call('GET', KEYS[2]) or redis.call('HGET', KEYS[2], ARGV[2])
return {redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES'), ref or ''}
"""
# A user's six keys in one script call instead of a six-command pipeline: the keys share the
# user's hash tag (one slot on a cluster), and the client packs and parses one command, not
# six: 0.43-0.51 ms of client CPU per read became 0.27-0.30 ms (redis-py 8.1 with hiredis,
# 100 history and 300 seen items; measured).
_READ_USER = """
return {redis.call('HGETALL', KEYS[1]), redis.call('ZRANGE', KEYS[2], -tonumber(ARGV[1]), -1),
        redis.call('ZRANGE', KEYS[3], 0, -1), redis.call('SMEMBERS', KEYS[4]),
        redis.call('HGETALL', KEYS[5]), redis.call('HGETALL', KEYS[6])}
"""


class OnlineStore:
    """Batched async reads of user and item features (plus catalog writes for the item API).

    Catalog records are nearly static, so decoded records are cached per process and dropped
    whenever ``catalog:version`` moves (read in the same round trip as the counters). With
    ``cache_ttl_s`` > 0 item counters and the global lists are also reused for that long
    (``read_cache``: serving turns it on; by default every read goes to Redis).
    """

    def __init__(
        self,
        redis: AsyncRedis,
        config: FeatureConfig = DEFAULT_CONFIG,
        store: StoreConfig = DEFAULT_STORE_CONFIG,
        cache_ttl_s: float = 0.0,
    ) -> None:
        self.redis = redis
        self._read_user = redis.register_script(_READ_USER)
        self._read_decaying_top = redis.register_script(_DECAYING_TOP)
        self.config = config
        self.store = store
        self.layout = CounterLayout(config)
        self._catalog = CatalogColumns()
        self._catalog_version: bytes | None = None
        self._counters = CounterCache(len(COUNTER_FEATURES), cache_ttl_s)
        self._finest = min(ring.granularity for ring in self.layout.rings)
        self._lists = ListCache(cache_ttl_s)
        self.seen_filter = SeenFilter(store.seen_filter_blocks, store.seen_filter_hashes)

    # ---- users ------------------------------------------------------------------------
    async def get_user(self, user_id: str, now: float) -> UserState:
        """Profile, history, seen/blocked sets, fatigue counts and features of one user."""
        user_keys = [
            keys.user_hash(user_id),
            keys.user_history(user_id),  # oldest first
            keys.user_seen(user_id),  # at most StoreConfig.seen_cap
            keys.user_blocked(user_id),
            keys.user_impressions(user_id),
            keys.user_arms(user_id),
        ]
        reply = await self._read_user(keys=user_keys, args=[self.store.history_cap])
        h, hist, seen, blocked, imps, arms = reply
        state = self._user_state(user_id, now, _hash(h), hist, seen, set(blocked), _hash(imps))
        if arms:  # remembered experiment arms do not make a user known
            state.arms = {k.decode(): v.decode() for k, v in _hash(arms).items()}
        return state

    async def remember_arms(self, user_id: str, arms: dict[str, str]) -> None:
        """Keep each experiment's first arm for the user (HSETNX: an arm once given stays)."""
        if not arms:
            return
        key = keys.user_arms(user_id)
        pipe = self.redis.pipeline(transaction=False)
        for experiment_id, arm in arms.items():
            pipe.hsetnx(key, experiment_id, arm)
        pipe.expire(key, int(self.store.arms_ttl_s))
        await pipe.execute()

    def _user_state(
        self,
        user_id: str,
        now: float,
        h: dict[bytes, bytes],
        hist: list[bytes],
        seen: list[bytes],
        blocked: set[bytes],
        imps: dict[bytes, bytes],
    ) -> UserState:
        profile = profile_from_hash(user_id, h)
        stored = np.array([float(h.get(f, 0.0)) for f in _AFFINITY_FIELDS], dtype=np.float64)
        last = h.get(b"last")
        features = UserFeatures(
            user_id=user_id,
            age=profile.age,
            gender=profile.gender,
            occupation=profile.occupation,
            zip_code=profile.zip_code,
            history=tuple(map(bytes.decode, hist)),
            genre_affinity=affinity_at(stored, now, self.config.affinity_half_life_s).tolist()
            if stored.any()
            else None,
            n_events=int(h.get(b"n", 0)),
            rating_sum=float(h.get(b"rs", 0.0)),
            n_ratings=int(h.get(b"nr", 0)),
            last_event_ts=float(last) if last else None,
        )
        seg = h.get(b"seg")
        return UserState(
            features=features,
            known=bool(h or hist or seen or blocked),
            seen=frozenset(map(bytes.decode, seen)),
            blocked=frozenset(map(bytes.decode, blocked)),
            impressions=dict(zip(map(bytes.decode, imps), map(int, imps.values()), strict=True)),
            segment=seg.decode() if seg else UNKNOWN_SEGMENT,
            region=profile.region,
            seen_filter=b"sfn" in h,  # items were pushed out of the seen window
        )

    # ---- items ------------------------------------------------------------------------
    async def get_items(
        self, item_ids: Sequence[str], now: float, user: UserState | None = None
    ) -> ItemBatch:
        """Catalog attributes, windowed counters and smoothed CTR of ``item_ids``, in order;
        with ``user`` (who has a seen filter) also which of them they saw long ago, checked
        in the same round trip (``batch.seen_earlier``)."""
        ids = list(item_ids)
        if not ids:
            return ItemBatch.empty()
        bucket = int(now // self._finest)  # cached rows are valid within one time bucket
        rows = self._catalog.rows(ids)
        values, stale = self._counters.read(rows, bucket)
        stale_ids = [ids[j] for j in stale]
        missing = list(dict.fromkeys(ids[j] for j in np.flatnonzero(rows == 0)))
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.CATALOG_VERSION)
        if missing:
            keys.mget(pipe, [keys.item(i) for i in missing], await self._item_node())
        if stale_ids:
            keys.mget(pipe, [keys.item_counters(i) for i in stale_ids], await self._item_node())
        check = None
        if user is not None and user.seen_filter:  # last in the pipeline: rest[-1] below
            check = self.seen_filter.queue_check(pipe, user.user_id, ids)
        version, *rest = await pipe.execute()
        earlier = SeenFilter.hits(rest.pop(), check) if check is not None else None
        records = rest[0] if missing else []
        if version != self._catalog_version:
            await self._reset_catalog(version, ids, missing, records)
        else:
            self._cache_records(missing, records)
        if missing or version != self._catalog_version:
            rows = self._catalog.rows(ids)  # records were added, or the rows reassigned
        if stale_ids:
            fetched = self.counter_features(self.layout.decode(rest[-1]), now)
            values[stale] = fetched
            self._counters.store(rows[stale], fetched, bucket)
        batch = self._item_batch(ids, values, rows)
        batch.seen_earlier = earlier
        return batch

    async def _item_node(self) -> Any:
        """On a cluster, the node of the item-side slot (``keys.mget``); None on one Redis."""
        if not isinstance(self.redis, AsyncRedisCluster):
            return None
        await self.redis.initialize()  # the slot table (a no-op once it is known)
        return self.redis.get_node_from_key(_ITEM_SLOT_KEY)

    async def _reset_catalog(
        self, version: bytes | None, ids: list[str], missing: list[str], records: list[Any]
    ) -> None:
        """The catalog changed since entries were cached: drop them and refetch this batch's."""
        self._clear_catalog()
        self._catalog_version = version
        if len(missing) == len(set(ids)):
            self._cache_records(missing, records)
            return
        unique = list(dict.fromkeys(ids))
        raws: Any = await self.redis.mget([keys.item(i) for i in unique])
        self._cache_records(unique, raws)

    def _cache_records(self, item_ids: list[str], raws: list[bytes | None]) -> None:
        if len(self._catalog) + len(item_ids) > self.store.catalog_cache_size:
            self._clear_catalog()
        self._catalog.add(
            [decode_item(i, raw) for i, raw in zip(item_ids, raws, strict=True) if raw is not None]
        )

    def _clear_catalog(self) -> None:
        """Drop the decoded catalog and the counter rows indexed by its rows."""
        self._catalog.clear()
        self._counters.clear()

    async def preload_catalog(self, chunk: int = 5000) -> int:
        """Decode the catalog into the cache (up to ``catalog_cache_size`` items) before
        serving, so the first requests do not pay for it; returns how many were cached.

        The version is read first: a catalog write during the load moves it, and the next
        ``get_items`` then drops what was loaded here.
        """
        version: Any = await self.redis.get(keys.CATALOG_VERSION)
        ids: list[str] = []
        async for member in self.redis.sscan_iter(keys.CATALOG_IDS, count=chunk):
            ids.append(member.decode())
            if len(ids) >= self.store.catalog_cache_size:
                break
        self._clear_catalog()
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            raws: Any = await self.redis.mget([keys.item(i) for i in part])
            self._cache_records(part, raws)
        self._catalog_version = version
        return len(self._catalog)

    def cached_items(self, item_ids: Sequence[str], now: float) -> ItemBatch:
        """The batch from this process's catalog cache alone, no Redis (the fallback when the
        store is down): attributes of cached items, counters zero; uncached items not found."""
        ids = list(item_ids)
        if not ids:
            return ItemBatch.empty()
        return self._item_batch(ids, np.zeros((len(ids), len(COUNTER_FEATURES))), None)

    def titles(self, item_ids: Sequence[str]) -> list[str]:
        """Catalog titles from this process's cache ("" for items it does not hold)."""
        cat = self._catalog
        return [cat.titles[r] for r in cat.rows(item_ids).tolist()]

    def counter_features(self, words: np.ndarray, now: float) -> np.ndarray:
        """[n, len(COUNTER_FEATURES)] counts at ``now`` from decoded counter words."""
        windowed = self.layout.windowed(words, now)
        totals = words[:, [TOTAL_INTERACTIONS, TOTAL_LIKES, TOTAL_CLICKS, TOTAL_IMPRESSIONS]]
        return np.column_stack([windowed["1h"], windowed["24h"], windowed["7d"], totals]).astype(
            np.float64
        )

    def _item_batch(self, ids: list[str], values: np.ndarray, rows: np.ndarray | None) -> ItemBatch:
        """The batch from counter feature rows; ``rows`` are the catalog rows when known."""
        cat = self._catalog
        rows = cat.rows(ids) if rows is None else rows
        row_list = rows.tolist()
        records = [cat.records[r] for r in row_list]
        counts = np.ascontiguousarray(values[:, :4])
        likes = values[:, 4].copy()
        ctr = smoothed_rate(
            values[:, 5], values[:, 6], self.store.ctr_prior_rate, self.store.ctr_prior_strength
        )
        return ItemBatch(
            item_ids=ids,
            found=rows > 0,
            features=LazyItemFeatures(len(ids), lambda: _features(ids, records, counts, likes)),
            added_ts=cat.added_ts[rows],
            age_restricted=cat.restricted[rows],
            regions=[cat.regions[r] for r in row_list],
            ctr=np.asarray(ctr, dtype=np.float32),
            counts=counts,
            like_count=likes,
            release_year=cat.year[rows],
            genres=cat.genres[rows],
            genre_mask=cat.genre_mask[rows],
            catalog_rows=rows,
            catalog=cat,
        )

    async def put_items(self, items: Sequence[ItemRecord]) -> None:
        """Add or replace catalog records (the item-add API and tests)."""
        pipe = self.redis.pipeline(transaction=False)
        stage_items(pipe, items)
        await pipe.execute()
        self._lists.clear()  # the fresh-items list changed: this process sees it at once

    # ---- candidate lists --------------------------------------------------------------
    async def trending(self, k: int, now: float) -> list[tuple[str, float]]:
        """Top ``k`` items by time-decayed engagement, scores decayed to ``now``."""
        if k <= 0:
            return []
        top = await self._decaying_top(("trending", k), keys.TRENDING, keys.TRENDING_REF, "", k)
        return _decayed(*top, now, self.store.trending_half_life_s)

    async def popular_in_segment(
        self, segment: str, k: int, now: float | None = None
    ) -> list[tuple[str, float]]:
        """Top ``k`` items by time-decayed engagement of users in ``segment`` (``all``: every
        user), scores decayed to ``now`` (default: this clock) as trending's are."""
        if k <= 0:
            return []
        key = keys.segment_popularity(segment)
        top = await self._decaying_top(("segment", segment, k), key, keys.SEGMENT_REFS, segment, k)
        return _decayed(*top, time.time() if now is None else now, self.store.segment_half_life_s)

    async def _decaying_top(
        self, name: tuple[Any, ...], zset: bytes, ref_key: bytes, ref_field: str, k: int
    ) -> tuple[list[tuple[str, float]], float | None]:
        """The top ``k`` of a decaying set as stored, and its reference time (``ref_key``, or
        that hash's ``ref_field``), in one script call (both keys in one slot); reused from
        the list cache while it is fresh."""
        cached: tuple[list[tuple[str, float]], float | None] | None = self._lists.get(name)
        if cached is None:
            top, ref = await self._read_decaying_top(keys=[zset, ref_key], args=[k, ref_field])
            pairs = [(m.decode(), float(s)) for m, s in zip(top[::2], top[1::2], strict=True)]
            cached = (pairs, float(ref) if ref else None)
            self._lists.put(name, cached)
        return cached

    async def fresh_items(self, k: int, now: float, max_age_s: float) -> list[tuple[str, float]]:
        """Up to ``k`` items added in the last ``max_age_s`` s, newest first, as (id, added_ts)."""
        if k <= 0:
            return []
        cached: list[tuple[str, float]] | None = self._lists.get(("fresh", k, max_age_s))
        if cached is None:
            top = await self.redis.zrevrangebyscore(
                keys.FRESH, now, now - max_age_s, start=0, num=k, withscores=True
            )
            cached = _pairs(top)
            self._lists.put(("fresh", k, max_age_s), cached)
        return cached


def _hash(flat: list[bytes]) -> dict[bytes, bytes]:
    """A hash from a script's HGETALL reply (field, value, field, value, ...)."""
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=False))


def _features(
    ids: list[str], records: list[ItemRecord], counts: np.ndarray, likes: np.ndarray
) -> list[ItemFeatures]:
    """Per-item records of a batch (built only when a caller iterates ``features``)."""
    rows = counts.tolist()
    return [
        ItemFeatures(
            item_id=i,
            genres=r.genres,
            release_year=r.release_year,
            count_1h=c[0],
            count_24h=c[1],
            count_7d=c[2],
            count_total=c[3],
            like_count=lk,
            rating_count=c[3],
        )  # fmt: skip
        for i, r, c, lk in zip(ids, records, rows, likes.tolist(), strict=True)
    ]


def _decayed(
    pairs: list[tuple[str, float]], ref_ts: float | None, now: float, half_life_s: float
) -> list[tuple[str, float]]:
    """Stored scores w·2^((t − ref)/h) as their values at ``now``: × 2^((ref − now)/h). A
    ``now`` hundreds of half-lives before the events (a clock override) is held at 2^900:
    beyond, the float overflows, and the order, which is all such a read can mean, is kept."""
    if not pairs:
        return []
    scale = 2.0 ** min(((ref_ts or now) - now) / half_life_s, _MAX_GROWTH)
    return [(m, s * scale) for m, s in pairs]


def _pairs(reply: Any) -> list[tuple[str, float]]:
    """(member, score) pairs of a WITHSCORES reply."""
    return [(m.decode(), float(s)) for m, s in reply]
