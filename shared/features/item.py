"""Item content features: genres multi-hot and release year."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

# GroupLens ML-100K genre order; index i is column i of every genre vector.
GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
N_GENRES = len(GENRES)
_GENRE_INDEX = {g.lower(): i for i, g in enumerate(GENRES)}


def genre_index(name: str) -> int | None:
    """Column of a genre name (case-insensitive), or None for an unknown name."""
    return _GENRE_INDEX.get(name.strip().lower())


def genre_multi_hot(genres: Iterable[str]) -> np.ndarray:
    """Multi-hot float32 vector [N_GENRES]; unknown names are ignored."""
    v = np.zeros(N_GENRES, dtype=np.float32)
    for g in genres:
        i = genre_index(g)
        if i is not None:
            v[i] = 1.0
    return v


def year_features(year: float | int | None) -> tuple[float, float]:
    """(clip((year - 1980) / 20, -3, 1), unknown flag)."""
    if year is None or (isinstance(year, float) and math.isnan(year)) or year <= 0:
        return 0.0, 1.0
    return float(min(max((float(year) - 1980.0) / 20.0, -3.0), 1.0)), 0.0


def item_age(year: float | int | None, now_year: float) -> float:
    """Item age in years at ``now_year``, divided by 20 and clipped to [0, 3] (0 if unknown)."""
    if year is None or (isinstance(year, float) and math.isnan(year)) or year <= 0:
        return 0.0
    return float(min(max((now_year - float(year)) / 20.0, 0.0), 3.0))
