"""ItemColumns: the item attributes stages need, as columns (built once per request).

The online store answers with an ``ItemBatch`` (a list of ``ItemFeatures`` plus catalog columns);
this turns it into arrays once, so the filters, the ranker and the re-ranker work on numpy
columns and the HTTP transports send compact columnar JSON. Model inputs are still produced
only by ``shared.features`` functions (see :meth:`ItemColumns.to_table`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from shared.features import N_GENRES, FeatureConfig, ItemTable
from shared.features.encoders import item_id_hash, year_columns
from shared.features.item import genre_index
from shared.online_store.types import ItemBatch

_BITS = np.left_shift(np.int64(1), np.arange(N_GENRES, dtype=np.int64))


@lru_cache(maxsize=1 << 14)
def genre_mask(genres: tuple[str, ...]) -> int:
    """Genre names as a bit mask (bit i = column i of ``shared.features.GENRES``)."""
    mask = 0
    for g in genres:
        i = genre_index(g)
        if i is not None:
            mask |= 1 << i
    return mask


def mask_to_multi_hot(masks: np.ndarray) -> np.ndarray:
    """[n] int64 masks → [n, N_GENRES] float32 multi-hot (equal to ``genre_multi_hot``)."""
    m = np.asarray(masks, dtype=np.int64)
    return ((m[:, None] & _BITS[None, :]) != 0).astype(np.float32)


@dataclass
class ItemColumns:
    """Per-item columns, row-aligned with ``item_ids``."""

    item_ids: list[str]
    found: np.ndarray  # bool
    genre_mask: np.ndarray  # int64 bit mask of genres
    release_year: np.ndarray  # float64, NaN unknown
    counts: np.ndarray  # float64 [n, 4]: 1h, 24h, 7d, total interactions
    like_count: np.ndarray  # float64
    rating_count: np.ndarray  # float64
    added_ts: np.ndarray  # float64 epoch seconds, 0 unknown
    age_restricted: np.ndarray  # bool
    regions: list[frozenset[str]]  # empty = everywhere

    def __len__(self) -> int:
        return len(self.item_ids)

    @classmethod
    def from_batch(cls, batch: ItemBatch) -> ItemColumns:
        """Columns of an online-store item batch (one pass over its records)."""
        feats = batch.features
        n = len(feats)
        numeric = np.array(
            [
                (
                    np.nan if f.release_year is None else f.release_year,
                    f.count_1h, f.count_24h, f.count_7d, f.count_total,
                    f.like_count, f.rating_count,
                )
                for f in feats
            ],
            dtype=np.float64,
        ).reshape(n, 7)  # fmt: skip
        return cls(
            item_ids=list(batch.item_ids),
            found=np.asarray(batch.found, dtype=bool),
            genre_mask=np.fromiter((genre_mask(tuple(f.genres)) for f in feats), np.int64, n),
            release_year=numeric[:, 0],
            counts=numeric[:, 1:5],
            like_count=numeric[:, 5],
            rating_count=numeric[:, 6],
            added_ts=np.asarray(batch.added_ts, dtype=np.float64),
            age_restricted=np.asarray(batch.age_restricted, dtype=bool),
            regions=list(batch.regions),
        )

    @classmethod
    def unknown(cls, item_ids: Sequence[str]) -> ItemColumns:
        """Columns for items whose attributes could not be read (every row ``found`` False)."""
        n = len(item_ids)
        z = np.zeros(n, dtype=np.float64)
        return cls(
            list(item_ids), np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64),
            np.full(n, np.nan), np.zeros((n, 4)), z, z.copy(), z.copy(),
            np.zeros(n, dtype=bool), [frozenset()] * n,
        )  # fmt: skip

    def take(self, rows: np.ndarray) -> ItemColumns:
        """The items at ``rows``, in that order."""
        r = np.asarray(rows, dtype=np.int64)
        return ItemColumns(
            [self.item_ids[i] for i in r], self.found[r], self.genre_mask[r],
            self.release_year[r], self.counts[r], self.like_count[r], self.rating_count[r],
            self.added_ts[r], self.age_restricted[r], [self.regions[i] for i in r],
        )  # fmt: skip

    def genres(self) -> np.ndarray:
        """[n, N_GENRES] float32 multi-hot."""
        return mask_to_multi_hot(self.genre_mask)

    def to_table(self, cfg: FeatureConfig) -> ItemTable:
        """The ranker's item table via the shared encoders (equal to ItemTable.from_items)."""
        return ItemTable(
            item_ids=self.item_ids,
            id_hash=item_id_hash(self.item_ids, cfg),
            genres=self.genres(),
            year=year_columns(self.release_year),
            release_year=self.release_year,
            counts=self.counts,
            like_count=self.like_count,
            rating_count=self.rating_count,
        )

