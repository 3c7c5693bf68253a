"""The ranker inputs the drift and skew monitors watch, read from a ranker feed dict.

User features are one row per request (the ranker's user inputs have batch 1, broadcast by
the model); item features are one row per scored candidate. Hashes, multi-hots and the time of
day are left out: their drift says nothing a dense feature would not (or is the clock).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# (feature name, ranker input, column)
USER_FEATURES: tuple[tuple[str, str, int], ...] = (
    ("user_activity", "user_dense", 0),
    ("user_mean_rating", "user_dense", 1),
    ("user_recency", "user_dense", 2),
)
ITEM_FEATURES: tuple[tuple[str, str, int], ...] = (
    ("item_count_1h", "item_dense", 0),
    ("item_count_24h", "item_dense", 1),
    ("item_count_7d", "item_dense", 2),
    ("item_count_total", "item_dense", 3),
    ("item_like_rate", "item_dense", 4),
    ("item_age", "item_dense", 5),
    ("item_year", "item_year", 0),
    ("cross_affinity", "cross", 0),
    ("cross_max_affinity", "cross", 1),
)
USER_NAMES = tuple(f[0] for f in USER_FEATURES)
ITEM_NAMES = tuple(f[0] for f in ITEM_FEATURES)
FEATURE_NAMES = USER_NAMES + ITEM_NAMES


def _blocks(spec: tuple[tuple[str, str, int], ...]) -> list[tuple[str, int, int]]:
    """Runs of consecutive columns of one input: (input, first column, end column)."""
    out: list[tuple[str, int, int]] = []
    for _, name, col in spec:
        if out and out[-1][0] == name and out[-1][2] == col:
            out[-1] = (name, out[-1][1], col + 1)
        else:
            out.append((name, col, col + 1))
    return out


_USER_BLOCKS = _blocks(USER_FEATURES)
_ITEM_BLOCKS = _blocks(ITEM_FEATURES)


def _columns(
    feeds: Mapping[str, np.ndarray],
    blocks: list[tuple[str, int, int]],
    rows: np.ndarray | None,
    extra: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """[rows, features + extras] float64: one slice per block of consecutive columns, then
    each 1-D ``extra`` array as a column."""
    parts = []
    for name, a, b in blocks:
        x = np.asarray(feeds[name])
        x = x.reshape(len(x), -1)
        parts.append(x[:, a:b] if rows is None else x[rows, a:b])
    parts += [(e if rows is None else e[rows])[:, None] for e in extra]
    return np.concatenate(parts, axis=1, dtype=np.float64)


def user_values(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """[users, 3]: the monitored user features (one row per user in the feed)."""
    return _columns(feeds, _USER_BLOCKS, None)


def item_values(
    feeds: Mapping[str, np.ndarray],
    rows: np.ndarray | None = None,
    extra: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """[items, 9]: the monitored item features, one row per candidate (or per ``rows``);
    ``extra`` per-candidate arrays (e.g. head scores) follow as more columns."""
    return _columns(feeds, _ITEM_BLOCKS, rows, extra)
