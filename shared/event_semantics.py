"""What each event type does to user and item state: declared here once, read by every path.

Three paths turn events into features, and none of them names an event type itself:

- online: ``shared.online_store.effects`` turns this table into the flag bits the
  type-agnostic Redis ingest script (``ingest.lua``) applies;
- offline: ``shared.offline_store.effects`` resolves the logged events with it for the
  point-in-time builder (``shared.offline_store.pit``);
- training: ``training.features.builder.FeatureBuilder`` resolves its events with it (a
  MovieLens rating is a ``rate`` event).

``tests/integration/test_event_semantics_agreement.py`` feeds the same events through all three
and checks that the features agree, and that changing this table changes all three.

The fields of an :class:`EventEffect`:

- ``interaction``: the user's history, seen set, ``n_events`` and ``last_event_ts``; the item's
  windowed counters and ``count_total`` (also the like rate's denominator, ``rating_count``);
- ``like``: the item's ``like_count``;
- ``rating``: the event's value enters the user's ``rating_sum`` / ``n_ratings``, and a value at
  or above ``FeatureConfig.like_threshold`` is a like as well; an event without a value is no
  rating (nor a like through it);
- ``impression`` / ``click``: the item's impressions and clicks (its CTR) and, for impressions,
  the user's fatigue counts;
- ``block``: the item enters the user's blocked set (it is never served to them again);
- ``affinity_weight``: what the event adds to the user's genre affinity and to the item's
  trending and segment-popularity scores (0 for none: negative feedback only stops growth).

Likes, ratings and affinity are defined over interactions (the like rate is likes per
interaction; ``n_ratings`` never exceeds ``n_events``), so a table that sets one of them on a
non-interaction is refused at construction, and the paths may rely on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from shared.events import EVENT_TYPES


@dataclass(frozen=True)
class EventEffect:
    """The state one event type moves (each field is described in the module docstring)."""

    interaction: bool = False
    like: bool = False
    rating: bool = False
    impression: bool = False
    click: bool = False
    block: bool = False
    affinity_weight: float = 0.0


@dataclass(frozen=True)
class ResolvedEffects:
    """The effects of a batch of events: arrays aligned with the events they came from."""

    interaction: np.ndarray  # bool
    like: np.ndarray  # bool: a like type, or a rating >= like_threshold
    is_rating: np.ndarray  # bool: a rating type that carries a value
    rating: np.ndarray  # float64: the rating value, 0 where the event is no rating
    impression: np.ndarray  # bool
    click: np.ndarray  # bool
    block: np.ndarray  # bool
    weight: np.ndarray  # float64 affinity weight

    def __len__(self) -> int:
        """Number of events."""
        return len(self.interaction)

    def take(self, rows: np.ndarray) -> ResolvedEffects:
        """The effects of a subset of the events (index or boolean mask)."""
        return ResolvedEffects(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


_FLAG_FIELDS = ("interaction", "like", "rating", "impression", "click", "block")


class EventSemantics:
    """The effect of every event type, checked complete and consistent, resolved per event."""

    def __init__(self, effects: Mapping[str, EventEffect]) -> None:
        _check(effects)
        self.effects: Mapping[str, EventEffect] = MappingProxyType(dict(effects))
        self._code = {t: k for k, t in enumerate(effects)}
        # Per-type lookup columns, indexed by type code: resolving a batch is one gather each.
        self._columns = {
            name: np.array([getattr(e, name) for e in effects.values()], dtype=bool)
            for name in _FLAG_FIELDS
        }
        self._weights = np.array([e.affinity_weight for e in effects.values()], dtype=np.float64)

    def __getitem__(self, event_type: str) -> EventEffect:
        """The effect of one event type."""
        return self.effects[event_type]

    def replace(self, event_type: str, **changes: Any) -> EventSemantics:
        """A copy with one type's effect changed (experiments; tests that every path follows)."""
        return EventSemantics({**self.effects, event_type: replace(self[event_type], **changes)})

    def resolve(
        self, types: Sequence[str] | np.ndarray, values: np.ndarray, like_threshold: float
    ) -> ResolvedEffects:
        """Effects of events given their type strings and values (NaN where an event has none)."""
        try:
            codes = np.fromiter((self._code[t] for t in types), dtype=np.int64, count=len(types))
        except KeyError as exc:
            raise ValueError(f"unknown event type {exc.args[0]!r}") from None
        values = np.asarray(values, dtype=np.float64)
        col = {name: c[codes] for name, c in self._columns.items()}
        is_rating = col["rating"] & ~np.isnan(values)
        rating = np.where(is_rating, values, 0.0)
        return ResolvedEffects(
            interaction=col["interaction"],
            like=col["like"] | (is_rating & (rating >= like_threshold)),
            is_rating=is_rating,
            rating=rating,
            impression=col["impression"],
            click=col["click"],
            block=col["block"],
            weight=self._weights[codes],
        )


def _check(effects: Mapping[str, EventEffect]) -> None:
    """Refuse a table that misses a type, knows an unknown one, or breaks the invariants."""
    if set(effects) != set(EVENT_TYPES):
        missing, extra = set(EVENT_TYPES) - set(effects), set(effects) - set(EVENT_TYPES)
        raise ValueError(f"semantics must cover {EVENT_TYPES}: missing {missing}, unknown {extra}")
    for name, e in effects.items():
        w = e.affinity_weight
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"{name}: affinity_weight must be finite and >= 0, got {w}")
        defined_over_interactions = {"like": e.like, "rating": e.rating, "affinity": w > 0}
        bad = [k for k, on in defined_over_interactions.items() if on and not e.interaction]
        if bad:
            raise ValueError(f"{name}: {', '.join(bad)} set on a non-interaction")


EVENT_SEMANTICS = EventSemantics(
    {
        "impression": EventEffect(impression=True),
        "click": EventEffect(interaction=True, click=True, affinity_weight=1.0),
        "watch": EventEffect(interaction=True, affinity_weight=1.0),
        "like": EventEffect(interaction=True, like=True, affinity_weight=2.0),
        "rate": EventEffect(interaction=True, rating=True, affinity_weight=1.0),
        "hide": EventEffect(block=True),
        "report": EventEffect(block=True),
    }
)
"""The platform's event semantics: the one table every feature path reads."""
