"""ListStats: what an arm's served lists look like, beside what its users did with them.

Per arm, from the served records the exposure join credits to it:

- catalog coverage: the distinct items served, and how concentrated the exposure is (the Gini
  coefficient of impressions over the items served at least once, and the share of them that
  went to the most exposed 10% of those items): an arm that wins clicks by showing everyone
  the same blockbusters shows here;
- diversity: the mean intra-list genre diversity of its lists (the gateway's
  ``genre_diversity`` per list: mean pairwise 1 - Jaccard of the items' genre sets), with its
  standard error over lists;
- latency: the request's own time at the gateway (``latency_ms`` of the record) as p50 / p99
  from a log-spaced histogram (0.1 ms to 100 s, 2% wide buckets: a quantile is exact to 2%).

Memory is bounded: one counter per distinct item (the catalog), a fixed histogram per arm.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_LOW_MS, _HIGH_MS, _GROWTH = 0.1, 100_000.0, 1.02
_BUCKETS = int(math.ceil(math.log(_HIGH_MS / _LOW_MS) / math.log(_GROWTH))) + 1


def bucket_of(latency_ms: float) -> int:
    """The histogram bucket of one latency (clamped to the range)."""
    if latency_ms <= _LOW_MS:
        return 0
    return min(_BUCKETS - 1, int(math.log(latency_ms / _LOW_MS) / math.log(_GROWTH)) + 1)


def bucket_upper_ms(bucket: int) -> float:
    """The upper edge of a bucket, in ms."""
    return _LOW_MS * _GROWTH**bucket


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0: all equal; towards 1: one item has all)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() == 0:
        return math.nan
    ranks = np.arange(1, n + 1)
    return float((2 * ranks - n - 1) @ x / (n * x.sum()))


@dataclass
class _Arm:
    items: Counter[str] = field(default_factory=Counter)
    lists: int = 0
    diversity_sum: float = 0.0
    diversity_sq: float = 0.0
    diversity_n: int = 0
    latency: np.ndarray = field(default_factory=lambda: np.zeros(_BUCKETS, dtype=np.int64))


class ListStats:
    """Coverage, diversity and latency of each arm's served lists."""

    def __init__(self) -> None:
        self._arms: dict[str, _Arm] = {}

    def add(self, arm: str, item_ids: list[str], diversity: float | None,
            latency_ms: float | None) -> None:  # fmt: skip
        """One served list credited to ``arm``."""
        a = self._arms.setdefault(arm, _Arm())
        a.lists += 1
        a.items.update(item_ids)
        if diversity is not None and math.isfinite(diversity):
            a.diversity_sum += diversity
            a.diversity_sq += diversity * diversity
            a.diversity_n += 1
        if latency_ms is not None and math.isfinite(latency_ms) and latency_ms >= 0:
            a.latency[bucket_of(latency_ms)] += 1

    def figures(self, arm: str) -> dict[str, Any]:
        """JSON-ready figures of one arm (None where nothing was seen)."""
        a = self._arms.get(arm, _Arm())
        counts = np.fromiter(a.items.values(), dtype=np.float64, count=len(a.items))
        top = np.sort(counts)[::-1][: max(1, int(math.ceil(0.1 * counts.size)))]
        return {
            "lists": a.lists,
            "distinct_items": len(a.items),
            "exposure_gini": _num(gini(counts)),
            "top10pct_share": _num(top.sum() / counts.sum()) if counts.size else None,
            **_diversity(a),
            **{
                f"latency_{q}_ms": _quantile(a.latency, p) for q, p in (("p50", 0.5), ("p99", 0.99))
            },
        }


def _diversity(a: _Arm) -> dict[str, float | None]:
    n = a.diversity_n
    if n == 0:
        return {"diversity": None, "diversity_se": None}
    mean = a.diversity_sum / n
    var = max(0.0, a.diversity_sq / n - mean * mean) * n / (n - 1) if n > 1 else math.nan
    return {"diversity": _num(mean), "diversity_se": _num(math.sqrt(var / n))}


def _quantile(hist: np.ndarray, q: float) -> float | None:
    total = int(hist.sum())
    if total == 0:
        return None
    bucket = int(np.searchsorted(np.cumsum(hist), math.ceil(q * total)))
    return round(bucket_upper_ms(bucket), 3)


def _num(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None
