"""The three event-to-feature paths run on one event sequence, and a field-by-field comparison.

Each runner returns :class:`Features` (field -> value per user, per item and, for segment
popularity, per segment) computed at the sequence's ``now`` under a given event semantics;
:func:`disagreements` names every field two paths both model and compute differently.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import redis
import redis.asyncio as aioredis

from shared.datasets.movielens import MovieLens
from shared.event_semantics import EventSemantics
from shared.features.config import DEFAULT_CONFIG
from shared.features.item import N_GENRES
from shared.features.popularity import ALL_SEGMENT, UNKNOWN_SEGMENT, Popularity, user_segment
from shared.offline_store import EventLog, ParquetEventWriter, build_training_set
from shared.offline_store.popularity import log_segment_popularity
from shared.offline_store.writer import LoggedEvent
from shared.online_store import keys
from shared.online_store.reader import COUNTER_FEATURES, OnlineStore
from shared.online_store.types import UserState
from shared.online_store.writer import StoreWriter
from tests.utils.event_sequences import EventSequence
from training.features.builder import FeatureBuilder

USER_FIELDS = ("history", "n_events", "rating_sum", "n_ratings", "last_event_ts", "genre_affinity")
ITEM_FIELDS = ("count_1h", "count_24h", "count_7d", "count_total", "like_count", "rating_count")
CTR_FIELDS = ("impressions", "clicks")  # online and offline: the training builder keeps no CTR
SERVING_FIELDS = ("seen", "blocked", "fatigue")  # online only
SEGMENT_FIELDS = ("popularity",)  # item -> decayed engagement of the segment's users
FIELDS = {
    "users": USER_FIELDS + SERVING_FIELDS,
    "items": ITEM_FIELDS + CTR_FIELDS,
    "segments": SEGMENT_FIELDS,
}


@dataclass
class Features:
    """What one path computed at the sequence's ``now``: field -> value per user, per item
    and per popularity segment."""

    path: str
    users: dict[str, dict[str, Any]]
    items: dict[str, dict[str, Any]]
    segments: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def segments_of(seq: EventSequence) -> dict[str, str]:
    """User id -> popularity segment (users without a profile are ``unknown``)."""
    return {p.user_id: user_segment(p.age, p.gender) for p in seq.profiles}


def _segments(popularity: Popularity) -> dict[str, dict[str, Any]]:
    return {s: {"popularity": items} for s, items in popularity.items() if items}


async def online(
    client: redis.Redis, url: str, seq: EventSequence, sem: EventSemantics
) -> Features:
    """The stream's deliveries through the Lua ingest script, read back by the online store."""
    client.flushdb()
    writer = StoreWriter(client, semantics=sem)
    writer.put_items(seq.catalog)
    writer.put_users(seq.profiles)
    for batch in seq.deliveries:
        writer.apply_events(batch)
    aio = aioredis.Redis.from_url(url)
    segments = {*segments_of(seq).values(), UNKNOWN_SEGMENT, ALL_SEGMENT}
    try:
        store = OnlineStore(aio)
        users = {u: _online_user(await store.get_user(u, seq.now)) for u in seq.users}
        batch = await store.get_items(seq.item_ids, seq.now)
        blobs = await aio.mget([keys.item_counters(i) for i in seq.item_ids])
        counters = store.counter_features(store.layout.decode(blobs), seq.now)
        n = len(seq.item_ids)
        popular = {s: dict(await store.popular_in_segment(s, n, seq.now)) for s in segments}
    finally:
        await aio.aclose()
    ctr = {f: counters[:, COUNTER_FEATURES.index(f)] for f in CTR_FIELDS}
    items = {
        f.item_id: {name: getattr(f, name) for name in ITEM_FIELDS}
        | {name: float(col[r]) for name, col in ctr.items()}
        for r, f in enumerate(batch.features)
    }
    return Features("online", users, items, _segments(popular))


def _online_user(state: UserState) -> dict[str, Any]:
    f = state.features
    return {
        "history": tuple(f.history)[-DEFAULT_CONFIG.hist_len :],
        "n_events": f.n_events,
        "rating_sum": f.rating_sum,
        "n_ratings": f.n_ratings,
        "last_event_ts": f.last_event_ts,
        "genre_affinity": np.zeros(N_GENRES) if f.genre_affinity is None else f.genre_affinity,
        "seen": state.seen,
        "blocked": state.blocked,
        "fatigue": state.impressions,
    }


def offline(log_dir: Path, seq: EventSequence, sem: EventSemantics) -> Features:
    """The deliveries written as the offline sink does, then the point-in-time builder."""
    writer = ParquetEventWriter(log_dir)
    offset = 0
    for batch in seq.deliveries:  # a redelivery comes back at a new offset, as after a retry
        writer.write([LoggedEvent(e, 0, offset + k) for k, e in enumerate(batch)])
        offset += len(batch)
    pairs = list(itertools.product(seq.users, seq.item_ids))
    labels = pa.table(
        {
            "user_id": [u for u, _ in pairs],
            "item_id": [i for _, i in pairs],
            "timestamp": [seq.now] * len(pairs),
        }
    )
    table = build_training_set(EventLog(log_dir), labels, item_genres=seq.genres, semantics=sem)
    users, items = {}, {}
    for r in table.to_pylist():
        users[r["user_id"]] = {f: r[f"user_{f}"] for f in USER_FIELDS} | {
            "history": tuple(r["user_history"]),
            "genre_affinity": np.asarray(r["user_genre_affinity"]),
        }
        items[r["item_id"]] = {f: r[f"item_{f}"] for f in ITEM_FIELDS + CTR_FIELDS}
    popular = log_segment_popularity(EventLog(log_dir), segments_of(seq), seq.now, semantics=sem)
    return Features("offline", users, items, _segments(popular))


def training(seq: EventSequence, sem: EventSemantics) -> Features:
    """The distinct events as a typed frame through the training feature builder."""
    events = pd.DataFrame(
        {
            "user_id": [e.user_id for e in seq.events],
            "item_id": [e.item_id for e in seq.events],
            "type": [e.type for e in seq.events],
            "value": [np.nan if e.value is None else e.value for e in seq.events],
            "timestamp": [int(e.timestamp) for e in seq.events],
        }
    )
    fb = FeatureBuilder(_dataset(seq, events), events, semantics=sem)
    cols = fb.user_columns(np.arange(len(seq.users)), seq.now)
    users = {}
    for r, u in enumerate(seq.users):
        last = float(cols.last_event_ts[r])
        users[u] = {
            "history": tuple(fb.item_ids[i] for i in cols.history[r][::-1] if i >= 0),
            "n_events": cols.n_events[r],
            "rating_sum": cols.rating_sum[r],
            "n_ratings": cols.n_ratings[r],
            "last_event_ts": None if math.isnan(last) else last,
            "genre_affinity": cols.genre_affinity[r],
        }
    counts, like, total = fb.item_counters(np.arange(len(seq.item_ids)), seq.now)
    windows = ("count_1h", "count_24h", "count_7d", "count_total")
    items = {
        i: dict(zip(windows, counts[r].tolist(), strict=True))
        | {"like_count": like[r], "rating_count": total[r]}
        for r, i in enumerate(seq.item_ids)
    }
    return Features("training", users, items, _segments(fb.segment_popularity(seq.now)))


def _dataset(seq: EventSequence, events: pd.DataFrame) -> MovieLens:
    """The sequence's users and catalog in the builder's dataset shape (no profiles)."""
    profiles = {p.user_id: p for p in seq.profiles}
    users = pd.DataFrame({"user_id": seq.users, "age": np.nan})
    for column in ("gender", "occupation", "zip_code"):
        users[column] = ""
    users["age"] = [profiles[u].age if u in profiles else np.nan for u in seq.users]
    users["gender"] = [profiles[u].gender or "" if u in profiles else "" for u in seq.users]
    items = pd.DataFrame({"item_id": seq.item_ids, "title": "", "release_year": np.nan})
    items["genres"] = [it.genres for it in seq.catalog]
    return MovieLens(events, users, items, fingerprint="", source_format="synthetic")


def declared(seq: EventSequence, sem: EventSemantics) -> Features:
    """The serving-only sets read straight off the declaration (no path but online has them)."""
    users: dict[str, dict[str, Any]] = {}
    for u in seq.users:
        mine = [e for e in seq.events if e.user_id == u]
        users[u] = {
            "seen": frozenset(e.item_id for e in mine if sem[e.type].interaction),
            "blocked": frozenset(e.item_id for e in mine if sem[e.type].block),
            "fatigue": dict(Counter(e.item_id for e in mine if sem[e.type].impression)),
        }
    return Features("declaration", users, {})


async def all_paths(
    client: redis.Redis, url: str, tmp: Path, seq: EventSequence, sem: EventSemantics
) -> list[Features]:
    """The sequence through every path (and the declaration's own reading) under ``sem``."""
    tmp.mkdir(parents=True)
    on = await online(client, url, seq, sem)
    return [on, offline(tmp, seq, sem), training(seq, sem), declared(seq, sem)]


def disagreements(seq: str, paths: list[Features]) -> list[str]:
    """Every (user or item, field) on which two paths that both model it differ, named."""
    out = []
    for kind, fields in FIELDS.items():
        entities = sorted({e for p in paths for e in getattr(p, kind)})
        for entity, field in itertools.product(entities, fields):
            have = [
                (p.path, getattr(p, kind)[entity][field])
                for p in paths
                if field in getattr(p, kind).get(entity, {})
            ]
            out += [
                f"{seq}: {kind[:-1]} {entity} {field}: {have[0][0]}={have[0][1]!r} {p}={v!r}"
                for p, v in have[1:]
                if not _same(have[0][1], v)
            ]
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal, floats and vectors to float tolerance (sums in another order), mappings key by
    key."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-9))
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)
