"""The Redis key layout of the online store (documented in docs/feature_store.md).

Per-user keys share the hash tag ``{u:<user_id>}`` so one user's keys live on one Redis Cluster
slot; item and global keys are spread by their own names.
"""

from __future__ import annotations

CATALOG_VERSION = b"catalog:version"  # INCR on every catalog write; readers drop their cache
CATALOG_IDS = b"catalog:ids"  # set of every item id
FRESH = b"items:fresh"  # zset item_id -> added_ts
TRENDING = b"trending"  # zset item_id -> time-scaled score (see trending_ref)
TRENDING_REF = b"trending:ref"  # reference time of the trending scores (float seconds)
ALL_SEGMENT = "all"  # popularity over every user


def item(item_id: str) -> bytes:
    """Catalog record of an item (orjson)."""
    return b"item:" + item_id.encode()


def item_counters(item_id: str) -> bytes:
    """Fixed-layout binary counters of an item (see ``counter_layout.CounterLayout``)."""
    return b"ictr:" + item_id.encode()


def segment_popularity(segment: str) -> bytes:
    """zset item_id -> engagement weight of users in ``segment``."""
    return b"segpop:" + segment.encode()


def event(event_id: str) -> bytes:
    """Dedupe mark of an applied event (expires after StoreConfig.dedupe_ttl_s)."""
    return b"ev:" + event_id.encode()


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


def user_blocked(user_id: str) -> bytes:
    """Set of items the user hid or reported."""
    return _user(user_id, b"blk")


def user_impressions(user_id: str) -> bytes:
    """Hash item_id -> times shown to the user (fatigue); expires when impressions stop."""
    return _user(user_id, b"imp")
