"""The ranker's item inputs from the frame's columns, via the shared feature encoders.

Id hashes depend on nothing but the id, so the shared encoder runs once per item and process
(``IdRowCache``). The values equal
``ItemTable.from_items`` on the same items (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat

import numpy as np

from shared.features import FeatureConfig, ItemTable
from shared.features.encoders import item_id_hash, year_columns
from shared.features.genre_mask import mask_to_multi_hot
from shared.frame import Frame

ITEM_INPUTS = ("genre_mask", "release_year", "counts", "like_count", "rating_count")
CACHE_LIMIT = 200_000  # ids per cache (a few MB); cleared and refilled when exceeded


class IdRowCache:
    """Rows of a deterministic function of the item id, computed once per id and process."""

    def __init__(self, compute: Callable[[list[str]], np.ndarray], limit: int) -> None:
        self.compute = compute
        self.limit = limit
        self._row: dict[str, int] = {}
        self._values: np.ndarray | None = None

    def get(self, item_ids: list[str]) -> np.ndarray:
        """Values for ``item_ids``, row-aligned."""
        get = self._row.get
        rows = np.fromiter(map(get, item_ids, repeat(-1)), np.int64, len(item_ids))
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


_ID_HASH_CACHES: dict[tuple[int, int], IdRowCache] = {}


def _id_hash_cache(cfg: FeatureConfig) -> IdRowCache:
    """The id-hash cache of one feature config (keyed by what the hash depends on)."""
    key = (cfg.item_id_buckets, cfg.n_id_hashes)
    cache = _ID_HASH_CACHES.get(key)
    if cache is None:
        cache = _ID_HASH_CACHES[key] = IdRowCache(lambda ids: item_id_hash(ids, cfg), CACHE_LIMIT)
    return cache


def item_table(frame: Frame, cfg: FeatureConfig) -> ItemTable:
    """The ranker's item table of the frame's items."""
    counts = frame["counts"]
    return ItemTable(
        item_ids=frame.ids,
        id_hash=_id_hash_cache(cfg).get(frame.ids),
        genres=mask_to_multi_hot(frame["genre_mask"]),
        year=year_columns(frame["release_year"]),
        release_year=frame["release_year"],
        counts=counts,
        like_count=frame["like_count"],
        rating_count=frame["rating_count"],
    )
