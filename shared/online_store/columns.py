"""The candidate columns the online store hydrates, and how each one is read.

This list is the store's side of the frame contract: a filter, ranker or re-ranker that needs
an item attribute names its column here (``needs = ("age_restricted",)``), and the gateway
hydrates only the columns some component needs. Adding an attribute is one entry below (and
its field in the catalog record when it is new content). User x item columns (seen, blocked,
impressions) come from the user's state, read once per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from shared.features import N_GENRES
from shared.frame import Column, ColumnValues
from shared.online_store.catalog import region_text
from shared.online_store.types import ItemBatch, UserState


@dataclass(frozen=True)
class StoreColumn:
    """A column and the function that reads it from an item batch and the user's state."""

    column: Column
    read: Callable[[ItemBatch, UserState], ColumnValues]


def membership(item_ids: list[str], members: frozenset[str]) -> np.ndarray:
    """Bool mask: which ids are in ``members`` (one set lookup per item, no objects built)."""
    if not members:
        return np.zeros(len(item_ids), dtype=bool)
    return np.fromiter(map(members.__contains__, item_ids), bool, len(item_ids))


def _text(batch: ItemBatch, attr: str, fallback: Callable[[int], str]) -> list[str]:
    """A text column from the reader's catalog rows, else per item from the batch."""
    cat, rows = batch.catalog, batch.catalog_rows
    if cat is not None and rows is not None:
        values: list[str] = getattr(cat, attr)
        return [values[r] for r in rows.tolist()]
    return [fallback(i) for i in range(len(batch))]


def _genre_mask(batch: ItemBatch, _: UserState) -> np.ndarray:
    if batch.genre_mask is not None:
        return batch.genre_mask
    bits = np.left_shift(np.int64(1), np.arange(N_GENRES, dtype=np.int64))
    genres = batch.genres if batch.genres is not None else batch.table().genres
    mask = ((np.asarray(genres) > 0).astype(np.int64) * bits).sum(axis=1)
    return np.asarray(mask, dtype=np.int64)


def _impressions(batch: ItemBatch, user: UserState) -> np.ndarray:
    imp = user.impressions
    if not imp:
        return np.zeros(len(batch), dtype=np.int64)
    return np.fromiter(map(imp.get, batch.item_ids, repeat(0)), np.int64, len(batch))


def _seen(batch: ItemBatch, user: UserState) -> np.ndarray:
    """In the seen window, or in the filter of the items pushed out of it (when checked)."""
    recent = membership(batch.item_ids, user.seen)
    return recent if batch.seen_earlier is None else recent | batch.seen_earlier


def _counts(batch: ItemBatch, _: UserState) -> np.ndarray:
    return batch.counts if batch.counts is not None else batch.table().counts


STORE_COLUMNS: tuple[StoreColumn, ...] = (
    StoreColumn(
        Column("found", "bool", doc="the catalog knows the item (its restrictions are known)"),
        lambda b, u: b.found,
    ),
    StoreColumn(Column("title", "str"), lambda b, u: _text(b, "titles", lambda i: "")),
    StoreColumn(
        Column(
            "genre_mask",
            "int64",
            low=0,
            high=(1 << N_GENRES) - 1,
            doc="genres as bits (bit i = shared.features.GENRES[i])",
        ),  # fmt: skip
        _genre_mask,
    ),
    StoreColumn(
        Column("release_year", "float64", nan_ok=True, low=0, high=3000, doc="NaN: unknown"),
        lambda b, u: b.release_year if b.release_year is not None else b.table().release_year,
    ),
    StoreColumn(
        Column("added_ts", "float64", low=0, doc="when the item joined the catalog (0: unknown)"),
        lambda b, u: b.added_ts,
    ),
    StoreColumn(Column("age_restricted", "bool"), lambda b, u: b.age_restricted),
    StoreColumn(
        Column("regions", "str", doc='"|"-joined regions it is licensed in ("": everywhere)'),
        lambda b, u: _text(b, "region_text", lambda i: region_text(b.regions[i])),
    ),
    StoreColumn(
        Column(
            "counts",
            "float64",
            width=4,
            low=0,
            doc="interactions in the last 1 h, 24 h, 7 d and in total",
        ),  # fmt: skip
        _counts,
    ),
    StoreColumn(
        Column("like_count", "float64", low=0),
        lambda b, u: b.like_count if b.like_count is not None else b.table().like_count,
    ),
    StoreColumn(
        Column("rating_count", "float64", low=0),
        lambda b, u: np.ascontiguousarray(_counts(b, u)[:, 3]),
    ),
    StoreColumn(
        Column("ctr", "float32", low=0, high=1, doc="smoothed click-through rate"),
        lambda b, u: b.ctr,
    ),
    StoreColumn(
        Column("seen", "bool", doc="the user interacted with the item (recently, or long ago)"),
        lambda b, u: _seen(b, u),
    ),
    StoreColumn(
        Column("blocked", "bool", doc="the user hid or reported the item"),
        lambda b, u: membership(b.item_ids, u.blocked),
    ),
    StoreColumn(
        Column("impressions", "int64", low=0, doc="times the item was shown to the user"),
        _impressions,
    ),
)
STORE_COLUMN_NAMES = tuple(c.column.name for c in STORE_COLUMNS)
_BY_NAME = {c.column.name: c for c in STORE_COLUMNS}


def hydrate(batch: ItemBatch, user: UserState, names: tuple[str, ...]) -> dict[str, ColumnValues]:
    """The columns ``names`` of ``batch`` for ``user`` (each read only when asked for)."""
    return {name: _BY_NAME[name].read(batch, user) for name in names}
