"""What each event does to the online features: the stream side of ``shared.features``.

The ingest script in Redis is type-agnostic; this module turns events into its arguments:
flag bits saying which state moves, the engagement weight and the affinity increment, all read
from the one declaration of event semantics (``shared.event_semantics``). Affinity is stored as
a sum of ``weight · genres/|genres| · 2^((t - E)/h)`` with a fixed epoch ``E``: reading it at
``now`` multiplies by ``2^(-(now - E)/h)``, which gives the value
``shared.features.affinity.update_affinity`` reaches applying the same events in time order
(a unit test proves it), while updates stay plain additions: commutative, so replays and
out-of-order events need no read-modify-write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import orjson

from shared.event_semantics import EVENT_SEMANTICS, EventSemantics, ResolvedEffects
from shared.events import Event
from shared.features.affinity import decay_factor
from shared.features.config import DEFAULT_CONFIG, FeatureConfig

# The script's flag bits (ingest.lua declares the same values; a unit test compares them).
INTERACTION = 1  # history, seen, n_events, last, item windows and total
LIKE = 2  # the item's like count
IMPRESSION = 4
CLICK = 8
BLOCK = 16  # the item goes to the user's blocked set
RATING = 32  # rating_sum and n_ratings move by the event's value

# Reference time of the stored affinity sums (2017-07-14); 2^((t - E)/h) stays finite in float64
# until about E + 1000 half-lives (year 2100 with the default 30-day half-life).
AFFINITY_EPOCH_S = 1_500_000_000.0


def resolve_events(
    events: Sequence[Event],
    config: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> ResolvedEffects:
    """The declared effects of a batch of events."""
    values = np.fromiter(
        (np.nan if e.value is None else e.value for e in events), np.float64, len(events)
    )
    return semantics.resolve([e.type for e in events], values, config.like_threshold)


def flag_bits(fx: ResolvedEffects) -> np.ndarray:
    """The script's flag word of each event."""
    bits = (
        (fx.interaction, INTERACTION),
        (fx.like, LIKE),
        (fx.impression, IMPRESSION),
        (fx.click, CLICK),
        (fx.block, BLOCK),
        (fx.is_rating, RATING),
    )
    out = np.zeros(len(fx), dtype=np.int64)
    for mask, bit in bits:
        out |= np.where(mask, bit, 0)
    return out


def event_flags(
    event: Event,
    config: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> int:
    """Flag bits of one event."""
    return int(flag_bits(resolve_events([event], config, semantics))[0])


def affinity_growth(ts: np.ndarray | float, half_life_s: float) -> np.ndarray:
    """2^((ts - E)/h): an event's weight in the stored affinity sums."""
    return np.exp2((np.asarray(ts, dtype=np.float64) - AFFINITY_EPOCH_S) / half_life_s)


def affinity_at(stored: np.ndarray, now: float, half_life_s: float) -> np.ndarray:
    """Raw affinity at ``now`` from the stored sums (inverse scaling of affinity_growth)."""
    shift = now - AFFINITY_EPOCH_S
    if shift >= 0:
        return np.asarray(stored, dtype=np.float64) * decay_factor(shift, half_life_s)
    return np.asarray(stored, dtype=np.float64) / decay_factor(-shift, half_life_s)


def script_events(
    events: Sequence[Event],
    genres: Mapping[str, Sequence[int]],
    config: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> bytes:
    """The events argument of the ingest script: one JSON array of :func:`script_rows` (one
    argument keeps the command cheap to encode; Redis decodes it in C with cjson)."""
    return orjson.dumps(script_rows(events, genres, config, semantics))


def script_rows(
    events: Sequence[Event],
    genres: Mapping[str, Sequence[int]],
    config: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> list[list[object]]:
    """One row per event for the ingest script.

    Each event is ``[event_id, user_id, item_id, ts, flags, weight, rating, affinity, genres]``
    (``rating`` is 0 unless the RATING bit is set); ``genres`` maps item ids to genre column
    indices (items missing from it add no affinity).
    """
    fx = resolve_events(events, config, semantics)
    ts = np.fromiter((e.timestamp for e in events), dtype=np.float64, count=len(events))
    growth = affinity_growth(ts, config.affinity_half_life_s)
    rows: list[list[object]] = []
    per_event = zip(
        events,
        flag_bits(fx).tolist(),
        fx.weight.tolist(),
        fx.rating.tolist(),
        growth.tolist(),
        strict=True,
    )
    for e, flags, weight, rating, g in per_event:
        cols = genres.get(e.item_id, ())
        aff = weight * g / len(cols) if cols and weight > 0 else 0.0
        rows.append(
            [e.event_id, e.user_id, e.item_id, e.timestamp, flags, weight, rating, aff, list(cols)]
        )
    return rows
