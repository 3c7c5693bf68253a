"""Point-in-time training sets: each label row gets the features known just before its time.

An as-of join of labels with the event log: a label at time ``t`` sees only events with
``timestamp < t`` (strictly; the label's own event and anything at the same second are left
out), so a later event can never change an earlier row. The values are computed with the shared
definitions (``shared.features``: ``count_in_window``, ``decay_factor``) and the declared event
semantics (``shared.event_semantics``, resolved by :mod:`shared.offline_store.effects`), the
same ones the online store uses.

Usage (the training pipeline)::

    from shared.offline_store import build_training_set, to_feature_records
    table = build_training_set("data/events", label_types=["click", "like"], item_genres=genres)
    users, items = to_feature_records(table, genres)   # -> encode_user_tower / ItemTable
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.event_semantics import EVENT_SEMANTICS, EventSemantics
from shared.features.affinity import decay_factor
from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.counters import count_in_window
from shared.features.item import N_GENRES, genre_multi_hot
from shared.features.records import ItemFeatures, UserFeatures
from shared.offline_store.effects import EventEffects, log_effects
from shared.offline_store.sources import EventSource, load

_AFFINITY_CHUNK = 512  # labels per decay matrix, bounding memory for very active users

USER_COLUMNS = (
    "user_n_events", "user_rating_sum", "user_n_ratings", "user_last_event_ts", "user_history",
    "user_genre_affinity",
)  # fmt: skip
ITEM_COLUMNS = (
    "item_count_1h", "item_count_24h", "item_count_7d", "item_count_total", "item_like_count",
    "item_rating_count", "item_impressions", "item_clicks",
)  # fmt: skip
FEATURE_COLUMNS: tuple[str, ...] = USER_COLUMNS + ITEM_COLUMNS
"""Columns added to the labels (item window columns follow the config's window names)."""


def build_training_set(
    source: EventSource,
    labels: pa.Table | None = None,
    *,
    label_types: Sequence[str] | None = None,
    start: float | None = None,
    end: float | None = None,
    item_genres: Mapping[str, Sequence[str]] | None = None,
    config: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> pa.Table:
    """Labels joined with their point-in-time user and item features.

    ``source``: the log folder (or an :class:`EventLog`, deduplicated by event_id there), or an
    already clean Arrow table of events. ``labels``: any table with ``user_id``, ``item_id``,
    ``timestamp`` (other columns pass through); by default the log's own events of
    ``label_types`` (all types if None) with ``start <= timestamp < end``. ``item_genres`` (item
    id -> genre names) enables ``user_genre_affinity`` (raw, decayed to the label time); without
    it that column is null. ``semantics`` says what each event type feeds (the platform's
    declaration by default). Returns the label columns plus :data:`FEATURE_COLUMNS`.
    """
    events = load(source, end)
    if labels is None:
        labels = _default_labels(events, label_types, start, end)
    return _Builder(events, item_genres, config, semantics).join(labels)


def _default_labels(
    events: pa.Table, types: Sequence[str] | None, start: float | None, end: float | None
) -> pa.Table:
    mask = pc.is_valid(events["timestamp"])
    if types is not None:
        mask = pc.and_(mask, pc.is_in(events["type"], pa.array(list(types), pa.string())))
    if start is not None:
        mask = pc.and_(mask, pc.greater_equal(events["timestamp"], start))
    if end is not None:
        mask = pc.and_(mask, pc.less(events["timestamp"], end))
    keep = [c for c in events.column_names if c not in ("date", "kafka_partition", "kafka_offset")]
    return events.filter(mask).select(keep)


def _groups(
    codes: np.ndarray, ts: np.ndarray | None = None, tie: np.ndarray | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(code, row indices) per distinct code; rows sorted by ``ts`` (then ``tie``) when given."""
    if ts is None:
        order = np.argsort(codes, kind="stable")
    else:
        order = np.lexsort((ts, codes) if tie is None else (tie, ts, codes))
    sorted_codes = codes[order]
    cuts = np.flatnonzero(np.diff(sorted_codes)) + 1
    for rows in np.split(order, cuts):
        if len(rows):
            yield int(codes[rows[0]]), rows


def _cum0(x: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0: ``_cum0(x)[k]`` is the sum of the first k values."""
    return np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])


class _Builder:
    """Holds the event arrays once and answers the as-of queries of all labels."""

    def __init__(
        self,
        events: pa.Table,
        item_genres: Mapping[str, Sequence[str]] | None,
        cfg: FeatureConfig,
        semantics: EventSemantics,
    ) -> None:
        self.cfg = cfg
        self.users = np.asarray(events["user_id"].to_pylist(), dtype=object)
        self.items = np.asarray(events["item_id"].to_pylist(), dtype=object)
        self.ts = events["timestamp"].to_numpy(zero_copy_only=False).astype(np.float64)
        self.fx: EventEffects = log_effects(events, cfg, semantics)
        self.item_genres = item_genres

    def join(self, labels: pa.Table) -> pa.Table:
        """The labels with the feature columns appended."""
        l_users = np.asarray(labels["user_id"].to_pylist(), dtype=object)
        l_items = np.asarray(labels["item_id"].to_pylist(), dtype=object)
        now = labels["timestamp"].to_numpy(zero_copy_only=False).astype(np.float64)
        cols = self._user_columns(l_users, now) | self._item_columns(l_items, now)
        for name, col in cols.items():
            labels = labels.append_column(name, col)
        return labels

    # ---- users ---------------------------------------------------------------------------
    def _user_columns(self, l_users: np.ndarray, now: np.ndarray) -> dict[str, pa.Array]:
        n = len(now)
        out = {k: np.zeros(n) for k in ("n", "rsum", "nrat")}
        last = np.full(n, np.nan)
        history: list[list[str]] = [[] for _ in range(n)]
        affinity = np.zeros((n, N_GENRES)) if self.item_genres is not None else None
        inter = np.flatnonzero(self.fx.interaction)
        codes, l_codes = _codes(self.users[inter], l_users)
        # Interactions in the same second are ordered by item id, as in the online history (a
        # sorted set by first-interaction time), so both histories list ties alike.
        by_item = np.unique(self.items[inter].astype(str), return_inverse=True)[1]
        ev_rows = dict(_groups(codes, self.ts[inter], by_item))
        for code, lab in _groups(l_codes):
            rows = inter[ev_rows[code]] if code in ev_rows else inter[:0]
            ts = self.ts[rows]
            end = np.searchsorted(ts, now[lab], side="left")  # strictly before the label
            out["n"][lab] = end
            out["rsum"][lab] = _cum0(self.fx.rating[rows])[end]
            out["nrat"][lab] = _cum0(self.fx.is_rating[rows])[end]
            last[lab] = np.where(end > 0, ts[np.maximum(end - 1, 0)] if len(ts) else 0.0, np.nan)
            first_pos, first_items = _first_occurrences(self.items[rows])
            upto = np.searchsorted(first_pos, end, side="left")  # distinct items seen before t
            for i, k in zip(lab, upto, strict=True):
                history[i] = list(first_items[max(0, k - self.cfg.hist_len) : k])
            if affinity is not None:
                affinity[lab] = self._affinity(rows, now[lab], end)
        return {
            "user_n_events": pa.array(out["n"].astype(np.int64)),
            "user_rating_sum": pa.array(out["rsum"]),
            "user_n_ratings": pa.array(out["nrat"].astype(np.int64)),
            "user_last_event_ts": pa.array(last, from_pandas=True),
            "user_history": pa.array(history, pa.list_(pa.string())),
            "user_genre_affinity": pa.array(
                list(affinity) if affinity is not None else [None] * n, pa.list_(pa.float64())
            ),
        }

    def _affinity(self, rows: np.ndarray, now: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Raw genre affinity at ``now``: Σ weight·genres/|genres|·decay over events before."""
        genres = np.stack([self._genres(it) for it in self.items[rows]]) if len(rows) else None
        if genres is None:
            return np.zeros((len(now), N_GENRES))
        total = genres.sum(axis=1, keepdims=True)
        contrib = np.where(total > 0, genres / np.maximum(total, 1e-12), 0.0)
        contrib *= self.fx.weight[rows][:, None]
        ts = self.ts[rows]
        out = np.empty((len(now), N_GENRES))
        for s in range(0, len(now), _AFFINITY_CHUNK):
            t, e = now[s : s + _AFFINITY_CHUNK], end[s : s + _AFFINITY_CHUNK]
            before = np.arange(len(ts))[None, :] < e[:, None]
            decay = decay_factor(t[:, None] - ts[None, :], self.cfg.affinity_half_life_s)
            out[s : s + _AFFINITY_CHUNK] = np.where(before, decay, 0.0) @ contrib
        return out

    def _genres(self, item_id: str) -> np.ndarray:
        names = self.item_genres.get(item_id, ()) if self.item_genres is not None else ()
        return genre_multi_hot(names).astype(np.float64)

    # ---- items ---------------------------------------------------------------------------
    def _item_columns(self, l_items: np.ndarray, now: np.ndarray) -> dict[str, pa.Array]:
        n = len(now)
        windows = {name: np.zeros(n) for name in self.cfg.windows}
        agg = {k: np.zeros(n) for k in ("total", "like", "imp", "click")}
        codes, l_codes = _codes(self.items, l_items)
        ev_rows = dict(_groups(codes, self.ts))
        for code, lab in _groups(l_codes):
            rows = ev_rows.get(code, np.zeros(0, dtype=np.int64))
            ts, t = self.ts[rows], now[lab]
            inter_ts = ts[self.fx.interaction[rows]]
            for name, (window, gran) in self.cfg.windows.items():
                windows[name][lab] = count_in_window(inter_ts, t, window, gran)
            agg["total"][lab] = np.searchsorted(inter_ts, t, side="left")
            end = np.searchsorted(ts, t, side="left")
            agg["like"][lab] = _cum0(self.fx.like[rows])[end]
            agg["imp"][lab] = _cum0(self.fx.impression[rows])[end]
            agg["click"][lab] = _cum0(self.fx.click[rows])[end]
        cols = {f"item_count_{name}": pa.array(v) for name, v in windows.items()}
        cols["item_count_total"] = pa.array(agg["total"])
        cols["item_like_count"] = pa.array(agg["like"])
        cols["item_rating_count"] = pa.array(agg["total"])  # like-rate denominator: interactions
        cols["item_impressions"] = pa.array(agg["imp"])
        cols["item_clicks"] = pa.array(agg["click"])
        return cols


def _first_occurrences(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ascending) and ids of each item's first appearance in a time-ordered list.

    The online history is the seen items in the order of their first interaction (a repeat
    does not move an item), so the offline history is built the same way.
    """
    if not len(items):
        return np.zeros(0, dtype=np.int64), items
    _, first = np.unique(items.astype(str), return_index=True)
    first.sort()
    return first, items[first]


def _codes(ev_ids: np.ndarray, label_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of event and label ids in one shared vocabulary."""
    both = np.concatenate([ev_ids, label_ids]).astype(str)
    _, inverse = np.unique(both, return_inverse=True)
    return inverse[: len(ev_ids)], inverse[len(ev_ids) :]


def to_feature_records(
    table: pa.Table, item_genres: Mapping[str, Sequence[str]] | None = None
) -> tuple[list[UserFeatures], list[ItemFeatures]]:
    """Rows of a training set as the shared feature records (for the shared encoders).

    Profile fields (age, gender, ...) and release years are not in the event log: fill them
    from your user and item tables before encoding if the model uses them.
    """
    d = table.select(["user_id", "item_id", *FEATURE_COLUMNS]).to_pydict()
    genres = item_genres or {}
    users, items = [], []
    for r in range(table.num_rows):
        last = d["user_last_event_ts"][r]
        users.append(
            UserFeatures(
                user_id=d["user_id"][r],
                history=tuple(d["user_history"][r]),
                genre_affinity=d["user_genre_affinity"][r],
                n_events=d["user_n_events"][r],
                rating_sum=d["user_rating_sum"][r],
                n_ratings=d["user_n_ratings"][r],
                last_event_ts=None if last is None or last != last else last,
            )
        )
        items.append(
            ItemFeatures(
                item_id=d["item_id"][r],
                genres=tuple(genres.get(d["item_id"][r], ())),
                count_1h=d["item_count_1h"][r],
                count_24h=d["item_count_24h"][r],
                count_7d=d["item_count_7d"][r],
                count_total=d["item_count_total"][r],
                like_count=d["item_like_count"][r],
                rating_count=d["item_rating_count"][r],
            )
        )
    return users, items
