"""Vectorised encoders that turn feature records into the exact ONNX input dicts.

The ``*_columns`` functions work on arrays and are what the offline pipeline calls for millions of
rows; the record-based ``encode_*`` functions call the same column functions for serving.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from shared.features.affinity import normalise_affinity
from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.counters import smoothed_rate
from shared.features.hashing import hash_buckets
from shared.features.item import N_GENRES, genre_multi_hot
from shared.features.profile import PROFILE_FIELDS, profile_tokens
from shared.features.records import ItemFeatures, UserFeatures
from shared.features.timefeat import cyclic_time

_SECONDS_PER_YEAR = 365.25 * 86_400.0


def user_id_hash(ids: Sequence[str], cfg: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """[n, n_id_hashes] int64 buckets of user ids."""
    return hash_buckets(ids, cfg.user_id_buckets, "user", cfg.n_id_hashes)


def item_id_hash(ids: Sequence[str], cfg: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """[n, n_id_hashes] int64 buckets of item ids (also used for history entries)."""
    return hash_buckets(ids, cfg.item_id_buckets, "item", cfg.n_id_hashes)


@lru_cache(maxsize=1 << 16)
def _profile_bucket(field_name: str, token: str, n_buckets: int) -> int:
    return int(hash_buckets([token], n_buckets, f"profile:{field_name}", 1)[0, 0])


def profile_hash(
    tokens: Sequence[Sequence[str]], cfg: FeatureConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """[n, 4] int64 buckets of profile tokens (see ``profile_tokens``); fields hash apart."""
    out = np.empty((len(tokens), len(PROFILE_FIELDS)), dtype=np.int64)
    for r, row in enumerate(tokens):
        for c, (f, tok) in enumerate(zip(PROFILE_FIELDS, row, strict=True)):
            out[r, c] = _profile_bucket(f, tok, cfg.profile_buckets)
    return out


def history_hash(
    histories: Sequence[Sequence[str]], cfg: FeatureConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """[n, hist_len, n_id_hashes]: last ``hist_len`` ids, most recent first, 0-padded."""
    out = np.zeros((len(histories), cfg.hist_len, cfg.n_id_hashes), dtype=np.int64)
    for r, hist in enumerate(histories):
        recent = list(hist)[-cfg.hist_len :][::-1]
        if recent:
            out[r, : len(recent)] = item_id_hash(recent, cfg)
    return out


def user_dense_columns(
    n_events: np.ndarray,
    rating_sum: np.ndarray,
    n_ratings: np.ndarray,
    last_event_ts: np.ndarray,
    now_ts: np.ndarray,
    cfg: FeatureConfig = DEFAULT_CONFIG,
) -> np.ndarray:
    """[n, 3]: activity, smoothed mean rating (centred), recency; NaN last_event_ts = never."""
    mean = smoothed_rate(rating_sum, n_ratings, cfg.rating_prior_mean, cfg.rating_prior_strength)
    days = np.where(
        np.isnan(last_event_ts), 365.0, np.clip((now_ts - last_event_ts) / 86_400.0, 0.0, 365.0)
    )
    cols = [
        np.log1p(n_events) / math.log(1000.0),
        np.asarray(mean) - 3.5,
        np.log1p(days) / math.log(366.0),
    ]
    return np.stack(cols, axis=1).astype(np.float32)


def item_dense_columns(
    counts: np.ndarray,
    like_count: np.ndarray,
    rating_count: np.ndarray,
    release_year: np.ndarray,
    now_ts: float | np.ndarray,
    cfg: FeatureConfig = DEFAULT_CONFIG,
) -> np.ndarray:
    """[n, 6]: log1p counts (1h, 24h, 7d, total), smoothed like rate, item age (years/20)."""
    rate = smoothed_rate(like_count, rating_count, cfg.like_prior_rate, cfg.like_prior_strength)
    now_year = 1970.0 + np.asarray(now_ts, dtype=np.float64) / _SECONDS_PER_YEAR
    known = ~np.isnan(release_year) & (release_year > 0)
    age = np.where(known, np.clip((now_year - np.nan_to_num(release_year)) / 20.0, 0.0, 3.0), 0.0)
    cols = np.column_stack([np.log1p(np.asarray(counts, dtype=np.float64)), rate, age])
    return cols.astype(np.float32)


def cross_columns(affinity_norm: np.ndarray, genres: np.ndarray) -> np.ndarray:
    """[n, 2]: affinity · normalised item genres, max affinity over the item's genres."""
    g = np.asarray(genres, dtype=np.float32)
    a = np.asarray(affinity_norm, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    gsum = g.sum(axis=1, keepdims=True)
    dot = ((g / np.maximum(gsum, 1.0)) * a).sum(axis=1)
    mx = np.where(g > 0, a, 0.0).max(axis=1)
    return np.stack([dot, mx], axis=1).astype(np.float32)


@lru_cache(maxsize=1 << 14)
def _genres_vec(genres: tuple[str, ...]) -> np.ndarray:
    return genre_multi_hot(genres)


@dataclass
class ItemTable:
    """Columnar item features: build once per catalog, slice per request (fast ranker path)."""

    item_ids: list[str]
    id_hash: np.ndarray  # [n, n_id_hashes] int64
    genres: np.ndarray  # [n, N_GENRES] float32
    year: np.ndarray  # [n, 2] float32
    release_year: np.ndarray  # [n] float64, NaN unknown
    counts: np.ndarray  # [n, 4] float64: 1h, 24h, 7d, total
    like_count: np.ndarray  # [n]
    rating_count: np.ndarray  # [n]

    @classmethod
    def from_items(
        cls, items: Sequence[ItemFeatures], cfg: FeatureConfig = DEFAULT_CONFIG
    ) -> ItemTable:
        """Encode a list of item records."""
        ids = [str(it.item_id) for it in items]
        n = len(items)
        genres = np.zeros((n, N_GENRES), dtype=np.float32)
        for r, it in enumerate(items):
            genres[r] = _genres_vec(tuple(it.genres))
        ry = np.array(
            [np.nan if it.release_year is None else float(it.release_year) for it in items],
            dtype=np.float64,
        )
        counts = np.array(
            [[it.count_1h, it.count_24h, it.count_7d, it.count_total] for it in items],
            dtype=np.float64,
        ).reshape(n, 4)
        return cls(
            item_ids=ids,
            id_hash=item_id_hash(ids, cfg),
            genres=genres,
            year=year_columns(ry),
            release_year=ry,
            counts=counts,
            like_count=np.array([it.like_count for it in items], dtype=np.float64),
            rating_count=np.array([it.rating_count for it in items], dtype=np.float64),
        )

    def take(self, idx: np.ndarray | Sequence[int]) -> ItemTable:
        """Rows ``idx`` (e.g. the candidates of one request)."""
        ix = np.asarray(idx, dtype=np.int64)
        return ItemTable(
            item_ids=[self.item_ids[i] for i in ix],
            id_hash=self.id_hash[ix],
            genres=self.genres[ix],
            year=self.year[ix],
            release_year=self.release_year[ix],
            counts=self.counts[ix],
            like_count=self.like_count[ix],
            rating_count=self.rating_count[ix],
        )

    def __len__(self) -> int:
        return len(self.item_ids)


def year_columns(release_year: np.ndarray) -> np.ndarray:
    """[n, 2] float32 release-year features from years (NaN = unknown): ``year_features``
    vectorised (a test checks they agree)."""
    years = np.asarray(release_year, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore"):
        known = ~np.isnan(years) & (years > 0)
    value = np.where(known, np.clip((np.nan_to_num(years) - 1980.0) / 20.0, -3.0, 1.0), 0.0)
    return np.stack([value, (~known).astype(np.float64)], axis=1).astype(np.float32)


def _as_table(items: Sequence[ItemFeatures] | ItemTable, cfg: FeatureConfig) -> ItemTable:
    return items if isinstance(items, ItemTable) else ItemTable.from_items(items, cfg)


def encode_item_tower(
    items: Sequence[ItemFeatures] | ItemTable, cfg: FeatureConfig = DEFAULT_CONFIG
) -> dict[str, np.ndarray]:
    """Inputs of item_tower.onnx."""
    t = _as_table(items, cfg)
    return {"item_id_hash": t.id_hash, "item_genres": t.genres, "item_year": t.year}


def _affinity_matrix(users: Sequence[UserFeatures]) -> np.ndarray:
    raw = np.zeros((len(users), N_GENRES), dtype=np.float64)
    for r, u in enumerate(users):
        if u.genre_affinity is not None:
            raw[r] = np.asarray(u.genre_affinity, dtype=np.float64)
    return normalise_affinity(raw)


def encode_user_tower(
    users: Sequence[UserFeatures],
    now_ts: float | np.ndarray,
    cfg: FeatureConfig = DEFAULT_CONFIG,
) -> dict[str, np.ndarray]:
    """Inputs of user_tower.onnx for a batch of users at time ``now_ts`` (scalar or per user)."""
    n = len(users)
    now = np.broadcast_to(np.asarray(now_ts, dtype=np.float64), (n,))
    last = np.array(
        [np.nan if u.last_event_ts is None else u.last_event_ts for u in users], dtype=np.float64
    )
    return {
        "user_id_hash": user_id_hash([str(u.user_id) for u in users], cfg),
        "user_profile": profile_hash(
            [profile_tokens(u.age, u.gender, u.occupation, u.zip_code) for u in users], cfg
        ),
        "hist_item_hash": history_hash([u.history for u in users], cfg),
        "user_genre_affinity": _affinity_matrix(users),
        "user_dense": user_dense_columns(
            np.array([u.n_events for u in users], dtype=np.float64),
            np.array([u.rating_sum for u in users], dtype=np.float64),
            np.array([u.n_ratings for u in users], dtype=np.float64),
            last,
            now,
            cfg,
        ),
        "time_cyc": cyclic_time(now),
    }


def encode_ranker(
    user: UserFeatures | dict[str, np.ndarray],
    items: Sequence[ItemFeatures] | ItemTable,
    now_ts: float,
    cfg: FeatureConfig = DEFAULT_CONFIG,
    ease_score: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Inputs of ranker.onnx for one user (batch 1, broadcast by the model) × N candidates.

    ``user`` may be a record or an already encoded user-tower dict (batch 1), which the
    candidate-generation stage has anyway. ``ease_score`` [N] is candidate generation's
    (``SparseItemItem.scores`` over the user's history; None: 0, as for a user without one).
    """
    feeds = encode_user_tower([user], now_ts, cfg) if isinstance(user, UserFeatures) else dict(user)
    t = _as_table(items, cfg)
    feeds["item_id_hash"] = t.id_hash
    feeds["item_genres"] = t.genres
    feeds["item_year"] = t.year
    feeds["item_dense"] = item_dense_columns(
        t.counts, t.like_count, t.rating_count, t.release_year, now_ts, cfg
    )
    feeds["cross"] = cross_columns(feeds["user_genre_affinity"], t.genres)
    n = len(t)
    feeds["ease_score"] = (
        np.zeros(n, np.float32) if ease_score is None else np.asarray(ease_score, np.float32)
    )
    return feeds
