"""ItemColumns: the item attributes stages need, as columns (built once per request).

The online store answers with an ``ItemBatch`` (a list of ``ItemFeatures`` plus catalog columns);
this turns it into arrays once, so the filters, the ranker and the re-ranker work on numpy
columns and the HTTP transports send compact columnar JSON. Model inputs are still produced
only by ``shared.features`` functions (see :meth:`ItemColumns.to_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from shared.features import N_GENRES, FeatureConfig, ItemTable
from shared.features.encoders import item_id_hash, year_columns
from shared.features.item import genre_index
from shared.online_store.types import ItemBatch

_BITS = np.left_shift(np.int64(1), np.arange(N_GENRES, dtype=np.int64))
_BITS_F = _BITS.astype(np.float64)


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
    return np.asarray((m[:, None] & _BITS[None, :]) != 0, dtype=np.float32)


def multi_hot_to_mask(genres: np.ndarray) -> np.ndarray:
    """[n, N_GENRES] multi-hot → [n] int64 masks (inverse of :func:`mask_to_multi_hot`)."""
    # float matmul runs in BLAS; exact, since masks stay far below 2**53
    return ((np.asarray(genres) > 0).astype(np.float64) @ _BITS_F).astype(np.int64)


class IdRowCache:
    """Rows of a deterministic function of the item id, computed once per id and process.

    The ranker's id hashes depend on nothing but the id, so the shared encoder runs once per
    item instead of once per request.
    """

    def __init__(self, compute: Callable[[list[str]], np.ndarray], limit: int) -> None:
        self.compute = compute
        self.limit = limit
        self._row: dict[str, int] = {}
        self._values: np.ndarray | None = None

    def get(self, item_ids: list[str]) -> np.ndarray:
        """Values for ``item_ids``, row-aligned."""
        get = self._row.get
        rows = np.fromiter((get(i, -1) for i in item_ids), np.int64, len(item_ids))
        miss = np.flatnonzero(rows < 0)
        if miss.size:
            rows = self._add([item_ids[i] for i in miss], rows, miss)
        assert self._values is not None
        return self._values[rows]

    def _add(self, ids: list[str], rows: np.ndarray, miss: np.ndarray) -> np.ndarray:
        fresh = self.compute(ids)
        if self._values is None or len(self._row) + len(ids) > self.limit:
            self._row, self._values = {}, fresh[:0]
        start = len(self._values)
        unique: dict[str, int] = {}
        for j, item_id in enumerate(ids):
            unique.setdefault(item_id, j)
        take = np.fromiter(unique.values(), np.int64, len(unique))
        self._values = np.concatenate([self._values, fresh[take]])
        for n, item_id in enumerate(unique):
            self._row[item_id] = start + n
        rows = rows.copy()
        rows[miss] = [self._row[i] for i in ids]
        return rows


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
        """Columns of an online-store item batch (its columns when the store filled them)."""
        if (
            batch.counts is not None and batch.like_count is not None
            and batch.release_year is not None and batch.genres is not None
        ):  # fmt: skip
            return cls(
                item_ids=list(batch.item_ids),
                found=np.asarray(batch.found, dtype=bool),
                genre_mask=multi_hot_to_mask(batch.genres),
                release_year=np.asarray(batch.release_year, dtype=np.float64),
                counts=np.asarray(batch.counts, dtype=np.float64),
                like_count=np.asarray(batch.like_count, dtype=np.float64),
                rating_count=np.ascontiguousarray(batch.counts[:, 3], dtype=np.float64),
                added_ts=np.asarray(batch.added_ts, dtype=np.float64),
                age_restricted=np.asarray(batch.age_restricted, dtype=bool),
                regions=list(batch.regions),
            )
        return cls._from_records(batch)

    @classmethod
    def _from_records(cls, batch: ItemBatch) -> ItemColumns:
        """Columns built from the batch's per-item records (stores without columns)."""
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
        """The ranker's item table via the shared encoders (equal to ItemTable.from_items).

        Id hashes come from a per-process cache filled by the same encoder; year columns are
        computed once per distinct year.
        """
        return ItemTable(
            item_ids=self.item_ids,
            id_hash=_id_hash_cache(cfg).get(self.item_ids),
            genres=self.genres(),
            year=_year_columns(self.release_year),
            release_year=self.release_year,
            counts=self.counts,
            like_count=self.like_count,
            rating_count=self.rating_count,
        )


CACHE_LIMIT = 200_000  # ids per cache (a few MB); cleared and refilled when exceeded


_ID_HASH_CACHES: dict[tuple[int, int], IdRowCache] = {}


def _id_hash_cache(cfg: FeatureConfig) -> IdRowCache:
    """The id-hash cache of one feature config (keyed by what the hash depends on)."""
    key = (cfg.item_id_buckets, cfg.n_id_hashes)
    cache = _ID_HASH_CACHES.get(key)
    if cache is None:
        cache = _ID_HASH_CACHES[key] = IdRowCache(lambda ids: item_id_hash(ids, cfg), CACHE_LIMIT)
    return cache


def _year_columns(release_year: np.ndarray) -> np.ndarray:
    """``year_columns`` evaluated once per distinct year (NaNs count as one value)."""
    years = np.asarray(release_year, dtype=np.float64)
    if len(years) == 0:
        return year_columns(years)
    uniq, inverse = np.unique(years, return_inverse=True)
    return year_columns(uniq)[inverse.reshape(-1)]
