"""What each logged event contributes to the user and item features, as vectorised flags.

The shared feature definitions (``shared.features``) say how a counter or an affinity is
computed; this module says which events feed which of them, for the typed event log:

- an *interaction* is an event whose affinity weight (``EVENT_WEIGHTS``) is positive: click,
  watch, rate, like. Interactions enter the user's history, ``n_events``, genre affinity and
  ``last_event_ts``, and the item's windowed counters and ``count_total``;
- a *rating* is a ``rate`` event with a value: ``rating_sum`` / ``n_ratings`` of the user;
- a *like* is a ``like`` event or a rating at or above ``like_threshold``: the item's
  ``like_count``; its denominator ``rating_count`` is the item's interactions (on MovieLens, where
  every interaction is a rating, both readings agree);
- impressions and clicks are counted per item for a CTR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.features.affinity import EVENT_WEIGHTS
from shared.features.config import DEFAULT_CONFIG, FeatureConfig


@dataclass(frozen=True)
class EventEffects:
    """Per-event flags and amounts (arrays aligned with the events they were computed from)."""

    weight: np.ndarray  # float64 affinity weight
    interaction: np.ndarray  # bool
    rating: np.ndarray  # float64 rating value, 0 where not a rating
    is_rating: np.ndarray  # bool
    like: np.ndarray  # bool
    impression: np.ndarray  # bool
    click: np.ndarray  # bool


def event_effects(
    types: np.ndarray, values: np.ndarray, cfg: FeatureConfig = DEFAULT_CONFIG
) -> EventEffects:
    """Flags of events given their ``type`` strings and ``value`` floats (NaN = no value)."""
    types = np.asarray(types, dtype=object)
    values = np.asarray(values, dtype=np.float64)
    weight = np.array([EVENT_WEIGHTS.get(t, 0.0) for t in types], dtype=np.float64)
    is_rating = (types == "rate") & ~np.isnan(values)
    high = is_rating & (np.nan_to_num(values) >= cfg.like_threshold)
    return EventEffects(
        weight=weight,
        interaction=weight > 0,
        rating=np.where(is_rating, np.nan_to_num(values), 0.0),
        is_rating=is_rating,
        like=(types == "like") | high,
        impression=types == "impression",
        click=types == "click",
    )
