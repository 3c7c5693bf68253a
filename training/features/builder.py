"""Point-in-time feature arrays for millions of (user, time) and (item, time) queries.

Each query at time ``t`` sees only events with timestamp strictly before ``t``. The per-value
definitions come from ``shared.features``; this module only vectorises the replay of the log
(prefix sums instead of an event loop) and is checked against the record encoders in tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.features.affinity import EVENT_WEIGHTS, normalise_affinity
from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.counters import window_start
from shared.features.encoders import (
    item_dense_columns,
    item_id_hash,
    profile_hash,
    user_dense_columns,
    user_id_hash,
    year_columns,
)
from shared.features.item import genre_multi_hot
from shared.features.profile import profile_tokens
from shared.features.timefeat import cyclic_time
from training.data.movielens import MovieLens

_KEY = np.int64(1) << 32  # composite sort key: entity index · 2^32 + timestamp


class FeatureBuilder:
    """Features of users and items from a known event log (e.g. the training split only)."""

    def __init__(self, data: MovieLens, events: pd.DataFrame, cfg: FeatureConfig = DEFAULT_CONFIG):
        self.cfg = cfg
        self.user_ids = data.users["user_id"].tolist()
        self.item_ids = data.items["item_id"].tolist()
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {it: i for i, it in enumerate(self.item_ids)}
        self._static_items(data)
        self._static_users(data)
        uidx = events["user_id"].map(self.user_index).to_numpy(np.int64)
        iidx = events["item_id"].map(self.item_index).to_numpy(np.int64)
        ts = events["timestamp"].to_numpy(np.int64)
        rating = events["rating"].to_numpy(np.float64)
        self._index_users(uidx, iidx, ts, rating)
        self._index_items(uidx, iidx, ts, rating)

    # ---- static parts -------------------------------------------------------------------
    def _static_items(self, data: MovieLens) -> None:
        self.item_hash = item_id_hash(self.item_ids, self.cfg)
        self.item_genres = np.stack([genre_multi_hot(g) for g in data.items["genres"]])
        self.release_year = data.items["release_year"].to_numpy(np.float64)
        self.item_year = year_columns(self.release_year)

    def _static_users(self, data: MovieLens) -> None:
        u = data.users
        self.user_hash = user_id_hash(self.user_ids, self.cfg)
        tokens = [
            profile_tokens(a, g, o, z)
            for a, g, o, z in zip(
                u["age"], u["gender"], u["occupation"], u["zip_code"], strict=True
            )
        ]
        self.user_profile = profile_hash(tokens, self.cfg)

    # ---- event indexes ------------------------------------------------------------------
    def _index_users(
        self, uidx: np.ndarray, iidx: np.ndarray, ts: np.ndarray, r: np.ndarray
    ) -> None:
        order = np.lexsort((ts, uidx))
        self.u_key = uidx[order] * _KEY + ts[order]
        self.u_item = iidx[order]
        self.u_ts = ts[order].astype(np.float64)
        self.u_start = np.searchsorted(uidx[order], np.arange(len(self.user_ids)), side="left")
        self.u_cum_rating = np.concatenate([[0.0], np.cumsum(r[order])])
        # Affinity: each event adds weight · genres/|genres|; decay is a common factor per query
        # (see shared.features.affinity.normalise_affinity), so a time-weighted prefix sum works.
        g = self.item_genres[self.u_item].astype(np.float64)
        contrib = EVENT_WEIGHTS["rate"] * g / np.maximum(g.sum(axis=1, keepdims=True), 1.0)
        t0 = float(self.u_ts.min()) if len(self.u_ts) else 0.0
        growth = np.power(2.0, (self.u_ts - t0) / self.cfg.affinity_half_life_s)
        self.u_cum_aff = np.vstack(
            [np.zeros((1, g.shape[1])), np.cumsum(contrib * growth[:, None], axis=0)]
        )

    def _index_items(
        self, uidx: np.ndarray, iidx: np.ndarray, ts: np.ndarray, r: np.ndarray
    ) -> None:
        del uidx
        order = np.lexsort((ts, iidx))
        self.i_key = iidx[order] * _KEY + ts[order]
        self.i_start = np.searchsorted(iidx[order], np.arange(len(self.item_ids)), side="left")
        like = (r[order] >= self.cfg.like_threshold).astype(np.float64)
        self.i_cum_like = np.concatenate([[0.0], np.cumsum(like)])

    # ---- queries ------------------------------------------------------------------------
    def user_positions(self, uidx: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) offsets of each user's events strictly before ``now``."""
        start = self.u_start[uidx]
        end = np.searchsorted(self.u_key, uidx * _KEY + np.ceil(now).astype(np.int64), side="left")
        return start, end

    def user_inputs(self, uidx: np.ndarray, now: np.ndarray | float) -> dict[str, np.ndarray]:
        """User-tower inputs for users ``uidx`` (indices into ``user_ids``) at times ``now``."""
        uidx = np.asarray(uidx, dtype=np.int64)
        now_a = np.broadcast_to(np.asarray(now, dtype=np.float64), uidx.shape).copy()
        start, end = self.user_positions(uidx, now_a)
        count = end - start
        L = self.cfg.hist_len
        pos = end[:, None] - 1 - np.arange(L)[None, :]
        valid = pos >= start[:, None]
        hist_items = self.u_item[np.clip(pos, 0, None)] if len(self.u_item) else np.zeros_like(pos)
        hist = np.where(valid[..., None], self.item_hash[hist_items], 0)
        aff_raw = self.u_cum_aff[end] - self.u_cum_aff[start]
        last_ts = np.where(
            count > 0, self.u_ts[np.clip(end - 1, 0, None)] if len(self.u_ts) else 0, np.nan
        )
        rating_sum = self.u_cum_rating[end] - self.u_cum_rating[start]
        return {
            "user_id_hash": self.user_hash[uidx],
            "user_profile": self.user_profile[uidx],
            "hist_item_hash": hist.astype(np.int64),
            "user_genre_affinity": normalise_affinity(aff_raw),
            "user_dense": user_dense_columns(
                count.astype(np.float64),
                rating_sum,
                count.astype(np.float64),
                last_ts,
                now_a,
                self.cfg,
            ),
            "time_cyc": cyclic_time(now_a),
        }

    def item_inputs(self, iidx: np.ndarray) -> dict[str, np.ndarray]:
        """Item-tower inputs (static content) for items ``iidx``."""
        iidx = np.asarray(iidx, dtype=np.int64)
        return {
            "item_id_hash": self.item_hash[iidx],
            "item_genres": self.item_genres[iidx],
            "item_year": self.item_year[iidx],
        }

    def item_counters(self, iidx: np.ndarray, now: np.ndarray | float) -> tuple[np.ndarray, ...]:
        """(counts [n,4] for 1h/24h/7d/total, like_count, rating_count) strictly before ``now``."""
        iidx = np.asarray(iidx, dtype=np.int64)
        now_a = np.broadcast_to(np.asarray(now, dtype=np.float64), iidx.shape)
        now_i = np.ceil(now_a).astype(np.int64)
        hi = np.searchsorted(self.i_key, iidx * _KEY + now_i, side="left")
        lo_total = self.i_start[iidx]
        counts = []
        for name in ("1h", "24h", "7d"):
            window, gran = self.cfg.windows[name]
            start = np.ceil(window_start(now_a, window, gran)).astype(np.int64)
            lo = np.searchsorted(self.i_key, iidx * _KEY + start, side="left")
            counts.append(hi - np.maximum(lo, lo_total))
        total = hi - lo_total
        counts.append(total)
        like = self.i_cum_like[hi] - self.i_cum_like[lo_total]
        return np.stack(counts, axis=1).astype(np.float64), like, total.astype(np.float64)

    def ranker_item_inputs(
        self, iidx: np.ndarray, now: np.ndarray | float
    ) -> dict[str, np.ndarray]:
        """Item-side ranker inputs (content + point-in-time counters) for items at times ``now``."""
        iidx = np.asarray(iidx, dtype=np.int64)
        counts, like, total = self.item_counters(iidx, now)
        feeds = self.item_inputs(iidx)
        feeds["item_dense"] = item_dense_columns(
            counts,
            like,
            total,
            self.release_year[iidx],
            np.asarray(now, dtype=np.float64),
            self.cfg,
        )
        return feeds
