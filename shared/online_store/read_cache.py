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
from collections.abc import Hashable
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

    Indexed by the item's row in the reader's catalog cache (``CatalogColumns``), so a batch
    costs no lookup beyond the catalog's own; row 0 (not in the catalog) is never cached. The
    reader clears this cache whenever it clears the catalog (rows are then reassigned).

    A row is reused only while ``now`` stays in the time bucket it was computed in (the
    windows end at the current bucket), so a cached row equals what the same raw counters
    would give at the read's ``now``: only the events of the last ``ttl_s`` can be missing.
    """

    def __init__(self, width: int, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._values = np.zeros((0, width), dtype=np.float64)
        self._fetched = np.zeros(0, dtype=np.float64)
        self._bucket = np.full(0, -1, dtype=np.int64)

    @property
    def enabled(self) -> bool:
        """False when ``ttl_s`` is 0: every read goes to Redis."""
        return self.ttl_s > 0

    def read(self, rows: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
        """([n, width] with the fresh rows filled, positions whose rows must be fetched)."""
        out = np.zeros((len(rows), self._values.shape[1]), dtype=np.float64)
        if not self.enabled:
            return out, np.arange(len(rows))
        hit = (rows > 0) & (rows < len(self._fetched))
        known = rows[hit]
        hit[hit] = (self._bucket[known] == bucket) & (
            time.monotonic() - self._fetched[known] <= self.ttl_s
        )
        out[hit] = self._values[rows[hit]]
        return out, np.flatnonzero(~hit)

    def store(self, rows: np.ndarray, values: np.ndarray, bucket: int) -> None:
        """Remember freshly computed rows (rows 0, not in the catalog, are not kept)."""
        if not self.enabled:
            return
        keep = rows > 0
        rows, values = rows[keep], values[keep]
        if not len(rows):
            return
        self._grow(int(rows.max()) + 1)
        self._values[rows] = values
        self._fetched[rows] = time.monotonic()
        self._bucket[rows] = bucket

    def clear(self) -> None:
        """Forget every row (the catalog rows they were indexed by are gone)."""
        self._bucket[:] = -1

    def _grow(self, needed: int) -> None:
        """Capacity doubles, so filling the cache copies each row O(1) times."""
        size = len(self._fetched)
        if needed <= size:
            return
        size = max(needed, 2 * size, 1024)
        values = np.zeros((size, self._values.shape[1]), dtype=np.float64)
        values[: len(self._values)] = self._values
        self._values = values
        self._fetched = np.concatenate([self._fetched, np.zeros(size - len(self._fetched))])
        self._bucket = np.concatenate(
            [self._bucket, np.full(size - len(self._bucket), -1, np.int64)]
        )


def read_cache_field() -> Any:
    """Setting of a serving process: the TTL of its counter and list caches (0 turns off)."""
    from pydantic import Field

    return Field(
        default=1.0, ge=0, le=60,
        description="item counters and global lists reused this long (0: always read Redis)",
    )  # fmt: skip
