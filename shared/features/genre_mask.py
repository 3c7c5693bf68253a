"""Genres as bit masks: one int64 per item (bit i = ``GENRES[i]``), the frame's genre column."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from shared.features.item import GENRES, N_GENRES, genre_index

_BITS = np.left_shift(np.int64(1), np.arange(N_GENRES, dtype=np.int64))
_BITS_F = _BITS.astype(np.float64)


@lru_cache(maxsize=1 << 14)
def _mask(genres: tuple[str, ...]) -> int:
    mask = 0
    for g in genres:
        i = genre_index(g)
        if i is not None:
            mask |= 1 << i
    return mask


def genre_mask(genres: Iterable[str]) -> int:
    """Genre names as a bit mask (unknown names are ignored)."""
    return _mask(tuple(genres))


def mask_to_multi_hot(masks: np.ndarray) -> np.ndarray:
    """[n] int64 masks -> [n, N_GENRES] float32 multi-hot (equal to ``genre_multi_hot``)."""
    m = np.asarray(masks, dtype=np.int64)
    return np.asarray((m[:, None] & _BITS[None, :]) != 0, dtype=np.float32)


def multi_hot_to_mask(genres: np.ndarray) -> np.ndarray:
    """[n, N_GENRES] multi-hot -> [n] int64 masks (inverse of :func:`mask_to_multi_hot`)."""
    # float matmul runs in BLAS; exact, since masks stay far below 2**53
    return ((np.asarray(genres) > 0).astype(np.float64) @ _BITS_F).astype(np.int64)


@lru_cache(maxsize=1 << 14)
def genre_columns(mask: int) -> tuple[int, ...]:
    """The genre columns (bit positions) set in a mask."""
    return tuple(i for i in range(N_GENRES) if mask >> i & 1)


def mask_to_names(mask: int) -> list[str]:
    """The genre names of a mask, in ``GENRES`` order (a new list: callers may keep it)."""
    return list(_names(mask))


@lru_cache(maxsize=1 << 14)
def _names(mask: int) -> tuple[str, ...]:
    return tuple(g for i, g in enumerate(GENRES) if mask >> i & 1)


def intra_list_genre_diversity(masks: np.ndarray) -> float:
    """Mean over item pairs of 1 - Jaccard of their genre sets (NaN below two items).

    0: every item has the same genres; 1: no two items share one. Items without genres
    count as sharing nothing with anyone (their Jaccard is 0)."""
    m = np.asarray(masks, dtype=np.uint32).ravel()
    n = m.size
    if n < 2:
        return float("nan")
    inter = np.bitwise_count(m[:, None] & m[None, :]).astype(np.float64)
    union = np.bitwise_count(m[:, None] | m[None, :]).astype(np.float64)
    jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    upper = np.triu_indices(n, 1)
    return float(1.0 - jaccard[upper].mean())
