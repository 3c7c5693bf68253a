"""Windowed counters and smoothed rates, with one bucketing rule online and offline.

A windowed count at time ``now`` over ``window`` seconds with ``granularity``-second buckets counts
the events with ``window_start(now) <= ts < now``. Online, the stream worker adds each event to the
bucket ``bucket_of(ts, granularity)`` and reads with :func:`windowed_count`; every event it has seen
happened before ``now``. Offline, :func:`count_in_window` applies the same bounds to sorted
timestamps, so both sides return the same number (point-in-time: nothing at or after ``now``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shared.features.config import DEFAULT_CONFIG

WINDOWS: dict[str, tuple[int, int]] = dict(DEFAULT_CONFIG.windows)


def bucket_of(ts: float | np.ndarray, granularity: int) -> np.ndarray | int:
    """Bucket number of a timestamp (floor division by the granularity)."""
    if isinstance(ts, np.ndarray):
        buckets: np.ndarray = np.floor_divide(ts, granularity).astype(np.int64)
        return buckets
    return int(ts // granularity)


def window_start(now: float | np.ndarray, window: int, granularity: int) -> np.ndarray | float:
    """First second counted by a window ending at ``now``: the start of the oldest bucket kept."""
    n_buckets = window // granularity
    first_bucket = np.floor_divide(now, granularity) - (n_buckets - 1)
    return first_bucket * granularity


def windowed_count(
    bucket_counts: Mapping[int, float], now: float, window: int, granularity: int
) -> float:
    """Online read: sum of bucket counts inside the window ending at ``now``."""
    hi = int(now // granularity)
    lo = hi - window // granularity + 1
    return float(sum(c for b, c in bucket_counts.items() if lo <= b <= hi))


def count_in_window(
    sorted_ts: np.ndarray, now: np.ndarray | float, window: int, granularity: int
) -> np.ndarray:
    """Offline read: events of ``sorted_ts`` in [window_start(now), now), vectorised on now."""
    now_arr = np.asarray(now, dtype=np.float64)
    start = window_start(now_arr, window, granularity)
    hi = np.searchsorted(sorted_ts, now_arr, side="left")
    lo = np.searchsorted(sorted_ts, start, side="left")
    return (hi - lo).astype(np.float64)


def smoothed_rate(
    successes: float | np.ndarray,
    trials: float | np.ndarray,
    prior_rate: float,
    prior_strength: float,
) -> float | np.ndarray:
    """Beta-prior smoothed rate (s + a·p) / (n + a): CTR, like rate, mean rating."""
    return (np.asarray(successes) + prior_strength * prior_rate) / (
        np.asarray(trials) + prior_strength
    )
