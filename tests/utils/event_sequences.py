"""Seeded event sequences for checks that several feature paths agree on the same events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.events import EVENT_TYPES, Event
from shared.online_store.types import ItemRecord, UserProfile

T_END = 1_700_000_000  # whole seconds: the training builder's resolution
GENRE_POOL = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "War")
RATINGS = (1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0)  # both sides of like_threshold (4.0), and on it
COLD_USER = "u-cold"  # no event at all
PASSIVE_USER = "u-passive"  # only impressions, hides and reports: no interaction


@dataclass(frozen=True)
class EventSequence:
    """Distinct events, how a stream delivers them, the catalog they refer to, a query time."""

    name: str
    events: list[Event]  # each event once, in time order
    deliveries: list[list[Event]]  # batches in arrival order, redeliveries included
    catalog: list[ItemRecord]
    users: list[str]
    now: float  # after every event
    profiles: list[UserProfile]  # written before the events: they give the users' segments

    @property
    def item_ids(self) -> list[str]:
        """Every catalog item id."""
        return [it.item_id for it in self.catalog]

    @property
    def genres(self) -> dict[str, tuple[str, ...]]:
        """Item id -> genre names."""
        return {it.item_id: it.genres for it in self.catalog}


def event_sequence(
    name: str,
    seed: int,
    n_events: int,
    n_items: int,
    n_users: int,
    shuffled: bool = True,
    grid_s: int = 60,
) -> EventSequence:
    """Every event type (ratings with and without a value), repeats, ties and late arrivals.

    Half the events fall in the last two hours (so the 1 h and 24 h windows hold some), the
    rest over ten days, on a ``grid_s`` grid (many share a second). With ``shuffled`` the
    stream delivers them in random order; a tenth are delivered twice (client retries).
    """
    rng = np.random.default_rng(seed)
    catalog = _catalog(rng, n_items)
    users = [f"u{k}" for k in range(n_users)]
    types = list(EVENT_TYPES) + [str(t) for t in rng.choice(EVENT_TYPES, n_events)]
    recent = rng.random(len(types)) < 0.5
    ago = np.where(
        recent, rng.integers(1, 2 * 3600, len(types)), rng.integers(1, 10 * 86_400, len(types))
    )
    events = [
        Event(
            event_id=f"{name}-{k}",
            user_id=users[int(rng.integers(0, n_users))],
            item_id=catalog[int(rng.integers(0, n_items))].item_id,
            type=kind,
            value=_value(rng, kind),
            timestamp=float(T_END - int(a) // grid_s * grid_s),
        )
        for k, (kind, a) in enumerate(zip(types, ago, strict=True))
    ]
    events += _passive(name, rng, catalog)
    events.sort(key=lambda e: e.timestamp)
    deliveries = _deliveries(rng, events, shuffled)
    everyone = [*users, PASSIVE_USER, COLD_USER]
    return EventSequence(
        name, events, deliveries, catalog, everyone, float(T_END + 30), _profiles(users)
    )


def _profiles(users: list[str]) -> list[UserProfile]:
    """Two segments (25-34|f, 18-24|m) by turns, every third user without a profile (the
    ``unknown`` segment)."""
    kinds = (UserProfile("", age=30, gender="F"), UserProfile("", age=20, gender="M"), None)
    return [
        UserProfile(u, age=p.age, gender=p.gender)
        for k, u in enumerate(users)
        if (p := kinds[k % 3]) is not None
    ]


def _catalog(rng: np.random.Generator, n_items: int) -> list[ItemRecord]:
    """Items with 0 to 3 genres (the first has none: it adds no affinity on any path)."""
    out = []
    for k in range(n_items):
        n = 0 if k == 0 else int(rng.integers(1, 4))
        genres = tuple(str(g) for g in rng.choice(GENRE_POOL, n, replace=False))
        out.append(ItemRecord(item_id=f"m{k:02d}", genres=genres))
    return out


def _value(rng: np.random.Generator, kind: str) -> float | None:
    """A rating (a tenth of them missing) for rate, dwell seconds for watch, else nothing."""
    if kind == "rate":
        return None if rng.random() < 0.1 else float(rng.choice(RATINGS))
    if kind == "watch":
        return float(rng.uniform(1, 600))
    return None


def _passive(name: str, rng: np.random.Generator, catalog: list[ItemRecord]) -> list[Event]:
    """A user who is only shown, hides and reports items."""
    kinds = ("impression", "impression", "hide", "report")
    return [
        Event(
            event_id=f"{name}-p{k}",
            user_id=PASSIVE_USER,
            item_id=catalog[int(rng.integers(0, len(catalog)))].item_id,
            type=kind,
            timestamp=float(T_END - int(rng.integers(1, 86_400))),
        )
        for k, kind in enumerate(kinds)
    ]


def _deliveries(rng: np.random.Generator, events: list[Event], shuffled: bool) -> list[list[Event]]:
    """Batches of 1 to 40 events in arrival order; a tenth of the events come again later."""
    order = rng.permutation(len(events)) if shuffled else np.arange(len(events))
    stream = [events[int(k)] for k in order]
    again = rng.choice(len(stream), len(stream) // 10, replace=False)
    for k in sorted(again.tolist(), reverse=True):
        stream.insert(int(rng.integers(k + 1, len(stream) + 1)), stream[k])
    batches, start = [], 0
    while start < len(stream):
        size = int(rng.integers(1, 41))
        batches.append(stream[start : start + size])
        start += size
    return batches
