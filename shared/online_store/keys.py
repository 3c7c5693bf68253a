"""The Redis key layout of the online store (documented in docs/feature_store.md).

Two hash tags, so the store runs on Redis Cluster with every script call and every multi-key
read inside one slot: each user's keys share ``{u:<user_id>}``, and every item-side and global
key (catalog records, item counters, trending, segment popularity, the catalog's sets) shares
``{i}``. The item side thus lives on one cluster node, the users spread over all of them; a
single Redis holds the same names.
"""

from __future__ import annotations

from typing import Any

from shared.features.popularity import ALL_SEGMENT as ALL_SEGMENT  # popularity over every user

ITEM_TAG = b"{i}:"  # the prefix of every item-side key
CATALOG_VERSION = ITEM_TAG + b"catalog:version"  # INCR on every catalog write
CATALOG_IDS = ITEM_TAG + b"catalog:ids"  # set of every item id
FRESH = ITEM_TAG + b"items:fresh"  # zset item_id -> added_ts
TRENDING = ITEM_TAG + b"trending"  # zset item_id -> time-scaled score (see trending_ref)
TRENDING_REF = ITEM_TAG + b"trending:ref"  # reference time of the trending scores (float s)
# Set while the store keeper re-runs the bootstrap (value: its start, unix s; with a TTL);
# under {i} so the gateways' store check (this and CATALOG_IDS) is one slot.
STORE_REBUILDING = ITEM_TAG + b"store:rebuilding"
# Segment popularity decays as trending does, each segment with its own reference time:
# hash segment -> ref (float s) of the scores in {i}:segpop:<segment>. Not under segpop:, so
# no segment name can collide with it.
SEGMENT_REFS = ITEM_TAG + b"segref"


def item(item_id: str) -> bytes:
    """Catalog record of an item (orjson)."""
    return ITEM_TAG + b"item:" + item_id.encode()


def item_counters(item_id: str) -> bytes:
    """Fixed-layout binary counters of an item (see ``counter_layout.CounterLayout``)."""
    return ITEM_TAG + b"ictr:" + item_id.encode()


def segment_popularity(segment: str) -> bytes:
    """zset item_id -> time-scaled engagement of users in ``segment`` (see SEGMENT_REFS)."""
    return ITEM_TAG + b"segpop:" + segment.encode()


def event(event_id: str) -> bytes:
    """Dedupe mark of an applied event on a single Redis (expires after
    StoreConfig.dedupe_ttl_s). On a cluster each part of an event has its own mark inside its
    slot: :func:`user_event` and :func:`item_event`."""
    return b"ev:" + event_id.encode()


def user_event(user_id: str, event_id: str) -> bytes:
    """Cluster only: mark of an event's effects on its user's keys."""
    return _user(user_id, b"ev:" + event_id.encode())


def item_event(event_id: str) -> bytes:
    """Cluster only: mark of an event's effects on the item-side keys."""
    return ITEM_TAG + b"ev:" + event_id.encode()


def mget(pipe: Any, names: list[bytes], node: Any = None) -> None:
    """Queue an MGET of same-slot keys on a (sync or async, cluster or not) pipeline.

    redis-py's cluster pipelines refuse ``.mget()`` even when every key shares a slot; the raw
    command is routed by its keys' one slot (a cross-slot one still fails, loudly). ``node``
    (a cluster's node of that slot) skips the routing: redis-py would hash every key in
    Python first (1.5 ms of a 500-key read measured); a slot moved since is retried routed.
    """
    if node is None:
        pipe.execute_command("MGET", *names)
    else:
        pipe.execute_command("MGET", *names, target_nodes=node)


def _user(user_id: str, suffix: bytes) -> bytes:
    return b"{u:" + user_id.encode() + b"}:" + suffix


def user_hash(user_id: str) -> bytes:
    """Hash: profile (age, gender, occ, zip, region, seg) + stats (n, rs, nr, last, a0..a18)."""
    return _user(user_id, b"h")


def user_history(user_id: str) -> bytes:
    """Sorted set item_id -> time of the first interaction, the latest StoreConfig.history_cap.

    (Named ``histz``: it replaced a list called ``hist``, which a store written before keeps.)
    """
    return _user(user_id, b"histz")


def user_arms(user_id: str) -> bytes:
    """Hash experiment id -> the arm the user was first given (sticky bucketing; the gateway
    writes it, with a TTL of StoreConfig.arms_ttl_s after the last assignment)."""
    return _user(user_id, b"arms")


def user_seen(user_id: str) -> bytes:
    """Sorted set item_id -> time of the first interaction, the latest StoreConfig.seen_cap
    (``seenz``: it replaced an unbounded set called ``seen``, which a store written before keeps
    until ``bootstrap --reset``)."""
    return _user(user_id, b"seenz")


def user_seen_filter(user_id: str) -> bytes:
    """The items pushed out of the seen window: a blocked Bloom filter of two generations
    (``seen_filter``; the user hash's ``sfg``/``sfn`` say which is current and how full)."""
    return _user(user_id, b"sf")


def user_blocked(user_id: str) -> bytes:
    """Set of items the user hid or reported."""
    return _user(user_id, b"blk")


def user_impressions(user_id: str) -> bytes:
    """Hash item_id -> times shown to the user (fatigue); expires when impressions stop."""
    return _user(user_id, b"imp")
