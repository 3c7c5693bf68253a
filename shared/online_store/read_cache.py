"""Short-lived read caches of the serving processes (off unless a service turns them on).

Every recommendation request reads the counters of ~500 candidates and three global lists
(trending, popular in a segment, fresh items). Candidates concentrate on popular items, so
at a few hundred requests per second the same counters are read from Redis many times a
second. Serving keeps them for ``ttl_s`` (default 1 s in the gateway and candidate
generation): a count may miss the events of the last second, a list may miss an item added
in the last second. User state is never cached (seen, blocked, fatigue must be exact).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np


class ListCache:
    """Values by key, each reused for ``ttl_s`` seconds (monotonic clock)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._values: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any | None:
        """The cached value, or None when absent or expired (or caching is off)."""
        hit = self._values.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, key: Hashable, value: Any) -> None:
        """Remember ``value`` (no-op when caching is off)."""
        if self.ttl_s > 0:
            self._values[key] = (time.monotonic(), value)

    def clear(self) -> None:
        """Forget everything (after this process wrote the data behind the lists)."""
        self._values.clear()


class CounterCache:
    """Per-item counter features (``OnlineStore.counter_features`` rows), reused for ``ttl_s``.

    A row is reused only while ``now`` stays in the time buckets it was computed for (the
    windows end at the current bucket), so a cached row equals what the same raw counters
    would give at the read's ``now``: only the events of the last ``ttl_s`` can be missing.
    """

    def __init__(self, width: int, ttl_s: float, max_items: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._row: dict[str, int] = {}
        self._values = np.zeros((0, width), dtype=np.float64)
        self._fetched = np.zeros(0, dtype=np.float64)
        self._bucket = np.zeros(0, dtype=np.int64)

    @property
    def enabled(self) -> bool:
        """False when ``ttl_s`` is 0: every read goes to Redis."""
        return self.ttl_s > 0

    def read(self, item_ids: Sequence[str], bucket: int) -> tuple[np.ndarray, np.ndarray]:
        """([n, width] with the fresh rows filled, positions whose rows must be fetched)."""
        n = len(item_ids)
        out = np.zeros((n, self._values.shape[1]), dtype=np.float64)
        if not self.enabled or not self._row:
            return out, np.arange(n)
        get = self._row.get
        rows = np.fromiter((get(i, -1) for i in item_ids), np.int64, n)
        hit = rows >= 0
        known = rows[hit]
        hit[hit] = (time.monotonic() - self._fetched[known] <= self.ttl_s) & (
            self._bucket[known] == bucket
        )
        out[hit] = self._values[rows[hit]]
        return out, np.flatnonzero(~hit)

    def store(self, item_ids: Sequence[str], values: np.ndarray, bucket: int) -> None:
        """Remember freshly computed rows (the whole cache is dropped when it would overflow)."""
        if not self.enabled or not len(item_ids):
            return
        new = [i for i in dict.fromkeys(item_ids) if i not in self._row]
        if len(self._row) + len(new) > self.max_items:
            self._row.clear()
            new = list(dict.fromkeys(item_ids))
        if new:
            start = len(self._row)
            self._row.update((item_id, start + j) for j, item_id in enumerate(new))
            self._grow(len(self._row))
        rows = np.fromiter((self._row[i] for i in item_ids), np.int64, len(item_ids))
        self._values[rows] = values
        self._fetched[rows] = time.monotonic()
        self._bucket[rows] = bucket

    def _grow(self, needed: int) -> None:
        """Capacity doubles, so filling the cache copies each row O(1) times."""
        if needed <= len(self._fetched):
            return
        size = min(max(needed, 2 * len(self._fetched), 1024), max(self.max_items, needed))
        values = np.zeros((size, self._values.shape[1]), dtype=np.float64)
        values[: len(self._values)] = self._values
        self._values = values
        self._fetched = np.concatenate([self._fetched, np.zeros(size - len(self._fetched))])
        self._bucket = np.concatenate([self._bucket, np.zeros(size - len(self._bucket), np.int64)])


def read_cache_field() -> Any:
    """Setting of a serving process: the TTL of its counter and list caches (0 turns off)."""
    from pydantic import Field

    return Field(
        default=1.0, ge=0, le=60,
        description="item counters and global lists reused this long (0: always read Redis)",
    )  # fmt: skip
