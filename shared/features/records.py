"""Plain records of what the feature store holds for a user and for an item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class UserFeatures:
    """A user's profile and point-in-time state (history oldest → newest, raw affinity)."""

    user_id: str
    age: int | None = None
    gender: str | None = None
    occupation: str | None = None
    zip_code: str | None = None
    history: Sequence[str] = field(default_factory=tuple)
    genre_affinity: Sequence[float] | None = None
    n_events: int = 0
    rating_sum: float = 0.0
    n_ratings: int = 0
    last_event_ts: float | None = None


@dataclass
class ItemFeatures:
    """An item's content and its counters as read at request time (already windowed)."""

    item_id: str
    genres: Sequence[str] = field(default_factory=tuple)
    release_year: int | None = None
    count_1h: float = 0.0
    count_24h: float = 0.0
    count_7d: float = 0.0
    count_total: float = 0.0
    like_count: float = 0.0
    rating_count: float = 0.0
