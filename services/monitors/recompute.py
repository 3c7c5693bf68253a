"""The monitored features of served samples, recomputed offline at the same point in time.

Each (request, item) of the samples becomes a label row at the request's ``ts``; the offline
store's point-in-time builder (``shared.offline_store.build_training_set``: events strictly
before ``ts``, the declared event semantics) gives the user's and item's state, and the
serving encoders' own column functions (``shared.features.encoders``) turn it into the
ranker's inputs. Only what the event log determines is recomputed: catalog attributes (release
year: ``item_age``, ``item_year``) are not in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from shared.features.affinity import normalise_affinity
from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.encoders import cross_columns, item_dense_columns, user_dense_columns
from shared.features.item import N_GENRES, genre_multi_hot
from shared.offline_store import EventSource, build_training_set

USER_SKEW = ("user_activity", "user_mean_rating", "user_recency")
ITEM_SKEW = (
    "item_count_1h", "item_count_24h", "item_count_7d", "item_count_total", "item_like_rate",
)  # fmt: skip
CROSS_SKEW = ("cross_affinity", "cross_max_affinity")  # need the items' genres


def label_rows(samples: Sequence[Mapping[str, Any]]) -> pa.Table:
    """One label row per (sample, item): user_id, item_id, timestamp = the request's ts."""
    users, items, ts = [], [], []
    for s in samples:
        for item_id in s["item_ids"]:
            users.append(str(s["user_id"]))
            items.append(str(item_id))
            ts.append(float(s["ts"]))
    return pa.table({"user_id": users, "item_id": items, "timestamp": pa.array(ts, pa.float64())})


def offline_features(
    samples: Sequence[Mapping[str, Any]],
    events: EventSource,
    item_genres: Mapping[str, Sequence[str]] | None,
    cfg: FeatureConfig = DEFAULT_CONFIG,
) -> dict[str, np.ndarray]:
    """Feature name -> offline values, one per (sample, item) row in ``label_rows`` order."""
    labels = label_rows(samples)
    if labels.num_rows == 0:
        return {}
    t = build_training_set(events, labels, item_genres=item_genres, config=cfg)
    col = {name: t[name].to_numpy(zero_copy_only=False) for name in t.column_names}
    now = col["timestamp"].astype(np.float64)
    last = np.array([np.nan if v is None else v for v in t["user_last_event_ts"].to_pylist()])
    user = user_dense_columns(col["user_n_events"].astype(np.float64),
                              col["user_rating_sum"].astype(np.float64),
                              col["user_n_ratings"].astype(np.float64), last, now, cfg)  # fmt: skip
    windows = [col[f"item_count_{name}"] for name in cfg.windows]
    counts = np.column_stack([*windows, col["item_count_total"]]).astype(np.float64)
    item = item_dense_columns(counts, col["item_like_count"], col["item_rating_count"],
                              np.full(len(now), np.nan), now, cfg)  # fmt: skip
    out = {n: user[:, j] for j, n in enumerate(USER_SKEW)}
    out |= {n: item[:, j] for j, n in enumerate(ITEM_SKEW)}
    if item_genres is not None:
        out |= _cross(t, item_genres)
    return out


def _cross(t: pa.Table, item_genres: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    rows = t["user_genre_affinity"].to_pylist()
    raw = np.array([a or [0.0] * N_GENRES for a in rows], dtype=np.float64).reshape(-1, N_GENRES)
    genres = np.stack([genre_multi_hot(item_genres.get(i, ())) for i in t["item_id"].to_pylist()])
    cross = cross_columns(normalise_affinity(raw), genres)
    return {n: cross[:, j] for j, n in enumerate(CROSS_SKEW)}


def served_features(
    samples: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Feature name -> served values in ``label_rows`` order (user values repeated per item)."""
    out: dict[str, list[float]] = {n: [] for n in names}
    for s in samples:
        k = len(s["item_ids"])
        for n in names:
            if n in s["user"]:
                out[n].extend([float(s["user"][n])] * k)
            else:
                out[n].extend(float(v) for v in s["item"][n][:k])
    return {n: np.asarray(v, dtype=np.float64) for n, v in out.items()}
