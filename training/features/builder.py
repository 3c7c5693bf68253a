"""Point-in-time feature arrays for millions of (user, time) and (item, time) queries.

Each query at time ``t`` sees only events with timestamp strictly before ``t``. The per-value
definitions come from ``shared.features``, and what each event feeds from the declared event
semantics (``shared.event_semantics``), the table the online store and the offline log read
too. This module only vectorises the replay of the log (prefix sums instead of an event loop);
tests check it against the record encoders, the online store and the offline builder.

Events are a MovieLens frame (``user_id, item_id, rating, timestamp``: every row a ``rate``
event) or a typed frame with ``type`` and ``value`` columns in place of ``rating`` (the offline
log's columns). Timestamps are whole seconds, MovieLens' resolution (fractions are dropped).
The builder keeps what the model reads: user history and counts, genre affinity, item counters;
and the segment popularity serving's ``segment_popular`` source lists (offline evaluation of
that source). The serving-only state (seen and blocked sets, impressions, clicks) is not built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.datasets import MOVIELENS_EVENT_TYPE
from shared.datasets.movielens import MovieLens
from shared.event_semantics import EVENT_SEMANTICS, EventSemantics, ResolvedEffects
from shared.features.affinity import decay_factor, normalise_affinity
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
from shared.features.popularity import (
    SEGMENT_HALF_LIFE_S,
    Popularity,
    segment_popularity,
    user_segment,
)
from shared.features.profile import profile_tokens
from shared.features.timefeat import cyclic_time

_KEY = np.int64(1) << 32  # composite sort key: entity index · 2^32 + timestamp


@dataclass(frozen=True)
class UserColumns:
    """Point-in-time user state of a batch of queries, before encoding."""

    n_events: np.ndarray  # [n] float64 interactions
    rating_sum: np.ndarray  # [n] float64
    n_ratings: np.ndarray  # [n] float64
    last_event_ts: np.ndarray  # [n] float64, NaN: no interaction yet
    history: np.ndarray  # [n, hist_len] item indices, most recent first, -1 padding
    genre_affinity: np.ndarray  # [n, N_GENRES] raw affinity decayed to the query time


class FeatureBuilder:
    """Features of users and items from a known event log (e.g. the training split only)."""

    def __init__(
        self,
        data: MovieLens,
        events: pd.DataFrame,
        cfg: FeatureConfig = DEFAULT_CONFIG,
        semantics: EventSemantics = EVENT_SEMANTICS,
    ) -> None:
        self.cfg = cfg
        self.user_ids = data.users["user_id"].tolist()
        self.item_ids = data.items["item_id"].tolist()
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {it: i for i, it in enumerate(self.item_ids)}
        self._static_items(data)
        self._static_users(data)
        fx = resolve_frame(events, cfg, semantics)
        # Every state built here is defined over interactions (the declaration refuses likes,
        # ratings or affinity on anything else), so the other events can be dropped up front.
        keep = fx.interaction
        uidx = events["user_id"].map(self.user_index).to_numpy(np.int64)[keep]
        iidx = events["item_id"].map(self.item_index).to_numpy(np.int64)[keep]
        ts = events["timestamp"].to_numpy(np.int64)[keep]
        self._index_users(uidx, iidx, ts, fx.take(keep))
        self._index_items(iidx, ts, fx.take(keep))
        engaged = fx.weight[keep] > 0  # what popularity counts (weights are on interactions)
        self.p_user, self.p_item = uidx[engaged], iidx[engaged]
        self.p_ts, self.p_weight = ts[engaged].astype(np.float64), fx.weight[keep][engaged]

    # ---- static parts -------------------------------------------------------------------
    def _static_items(self, data: MovieLens) -> None:
        self.item_hash = item_id_hash(self.item_ids, self.cfg)
        # Rank of each id in byte order: ties within a second order the history by item id,
        # as the online history (a Redis sorted set by first interaction) does.
        by_id = np.argsort(np.array(self.item_ids, dtype=str), kind="stable")
        self.item_rank = np.empty(len(by_id), dtype=np.int64)
        self.item_rank[by_id] = np.arange(len(by_id))
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
        self.user_segment = np.array(
            [
                user_segment(a, g if isinstance(g, str) else None)
                for a, g in zip(u["age"], u["gender"], strict=True)
            ],
            dtype=object,
        )

    # ---- event indexes ------------------------------------------------------------------
    def _index_users(
        self, uidx: np.ndarray, iidx: np.ndarray, ts: np.ndarray, fx: ResolvedEffects
    ) -> None:
        order = np.lexsort((self.item_rank[iidx], ts, uidx))
        users, items = uidx[order], iidx[order]
        self.u_key = users * _KEY + ts[order]
        self.u_ts = ts[order].astype(np.float64)
        self.u_start = np.searchsorted(users, np.arange(len(self.user_ids)), side="left")
        self.u_cum_rating = _cum0(fx.rating[order])
        self.u_cum_n_ratings = _cum0(fx.is_rating[order])
        # History: distinct items in the order of their first interaction (a repeat does not
        # move an item), as online and in the offline log.
        first = np.zeros(len(order), dtype=bool)
        first[np.unique(users * len(self.item_ids) + items, return_index=True)[1]] = True
        self.h_key, self.h_item = self.u_key[first], items[first]
        self.h_start = np.searchsorted(users[first], np.arange(len(self.user_ids)), side="left")
        # Affinity: each event adds weight · genres/|genres|, grown by 2^((ts - t0)/h) so that a
        # prefix-sum difference times 2^(-(now - t0)/h) is the decayed sum at ``now``.
        g = self.item_genres[items].astype(np.float64)
        contrib = fx.weight[order][:, None] * g / np.maximum(g.sum(axis=1, keepdims=True), 1.0)
        self.u_t0 = float(self.u_ts.min()) if len(self.u_ts) else 0.0
        growth = np.exp2((self.u_ts - self.u_t0) / self.cfg.affinity_half_life_s)
        self.u_cum_aff = np.vstack(
            [np.zeros((1, g.shape[1])), np.cumsum(contrib * growth[:, None], axis=0)]
        )

    def _index_items(self, iidx: np.ndarray, ts: np.ndarray, fx: ResolvedEffects) -> None:
        order = np.lexsort((ts, iidx))
        self.i_key = iidx[order] * _KEY + ts[order]
        self.i_start = np.searchsorted(iidx[order], np.arange(len(self.item_ids)), side="left")
        self.i_cum_like = _cum0(fx.like[order])

    # ---- queries ------------------------------------------------------------------------
    def user_positions(self, uidx: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) offsets of each user's interactions strictly before ``now``."""
        start = self.u_start[uidx]
        end = np.searchsorted(self.u_key, uidx * _KEY + np.ceil(now).astype(np.int64), side="left")
        return start, end

    def user_columns(self, uidx: np.ndarray, now: np.ndarray | float) -> UserColumns:
        """Raw user state of users ``uidx`` (indices into ``user_ids``) at times ``now``."""
        uidx = np.asarray(uidx, dtype=np.int64)
        now_a = np.broadcast_to(np.asarray(now, dtype=np.float64), uidx.shape)
        start, end = self.user_positions(uidx, now_a)
        count = end - start
        h_start = self.h_start[uidx]
        h_end = np.searchsorted(self.h_key, uidx * _KEY + np.ceil(now_a).astype(np.int64))
        pos = h_end[:, None] - 1 - np.arange(self.cfg.hist_len)[None, :]
        hist = self.h_item[np.clip(pos, 0, None)] if len(self.h_item) else np.zeros_like(pos)
        last_ts = np.where(
            count > 0, self.u_ts[np.clip(end - 1, 0, None)] if len(self.u_ts) else 0, np.nan
        )
        decay = decay_factor(now_a - self.u_t0, self.cfg.affinity_half_life_s)
        return UserColumns(
            n_events=count.astype(np.float64),
            rating_sum=self.u_cum_rating[end] - self.u_cum_rating[start],
            n_ratings=self.u_cum_n_ratings[end] - self.u_cum_n_ratings[start],
            last_event_ts=last_ts,
            history=np.where(pos >= h_start[:, None], hist, -1),
            genre_affinity=(self.u_cum_aff[end] - self.u_cum_aff[start])
            * np.asarray(decay)[:, None],
        )

    def user_inputs(self, uidx: np.ndarray, now: np.ndarray | float) -> dict[str, np.ndarray]:
        """User-tower inputs for users ``uidx`` (indices into ``user_ids``) at times ``now``."""
        uidx = np.asarray(uidx, dtype=np.int64)
        now_a = np.broadcast_to(np.asarray(now, dtype=np.float64), uidx.shape).copy()
        u = self.user_columns(uidx, now_a)
        hist = np.where((u.history >= 0)[..., None], self.item_hash[np.maximum(u.history, 0)], 0)
        return {
            "user_id_hash": self.user_hash[uidx],
            "user_profile": self.user_profile[uidx],
            "hist_item_hash": hist.astype(np.int64),
            "user_genre_affinity": normalise_affinity(u.genre_affinity),
            "user_dense": user_dense_columns(
                u.n_events, u.rating_sum, u.n_ratings, u.last_event_ts, now_a, self.cfg
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

    def segment_popularity(
        self, now: float, half_life_s: float = SEGMENT_HALF_LIFE_S
    ) -> Popularity:
        """Segment -> item -> popularity at ``now`` (``shared.features.popularity``): what the
        online store's segment sets hold after these events, for each user's profile segment."""
        items = np.asarray(self.item_ids, dtype=object)[self.p_item]
        return segment_popularity(
            self.user_segment[self.p_user], items, self.p_weight, self.p_ts, now, half_life_s
        )

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


def resolve_frame(
    events: pd.DataFrame,
    cfg: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> ResolvedEffects:
    """Declared effects of a frame's events: typed (``type``, ``value``) or MovieLens ratings."""
    if "type" in events.columns:
        types = events["type"].to_numpy(dtype=object)
        values = events["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        types = np.full(len(events), MOVIELENS_EVENT_TYPE, dtype=object)
        values = events["rating"].to_numpy(dtype=np.float64)
    return semantics.resolve(types, values, cfg.like_threshold)


def _cum0(x: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0: ``_cum0(x)[k]`` is the sum of the first k values."""
    return np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
