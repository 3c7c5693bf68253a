"""What each event does to the online features: the stream side of ``shared.features``.

The ingest script in Redis is type-agnostic; this module turns events into its arguments:
flags saying which counters move, the engagement weight (``affinity.EVENT_WEIGHTS``) and the
affinity increment. Affinity is stored as a sum of ``weight · genres/|genres| · 2^((t - E)/h)``
with a fixed epoch ``E``: reading it at ``now`` multiplies by ``2^(-(now - E)/h)``, which gives the
value ``shared.features.affinity.update_affinity`` reaches applying the same events in time order
(a unit test proves it), while updates stay plain additions: commutative, so replays and
out-of-order events need no read-modify-write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import orjson

from shared.events import Event
from shared.features.affinity import EVENT_WEIGHTS, decay_factor
from shared.features.config import DEFAULT_CONFIG, FeatureConfig

INTERACTION = 1  # counts in windows, totals, history, seen, n_events (click/watch/like/rate)
LIKE = 2  # like, or a rating >= FeatureConfig.like_threshold
IMPRESSION = 4
CLICK = 8
BLOCK = 16  # hide/report: the item goes to the user's blocked set
RATING = 32  # a rate event with a value: rating_sum and n_ratings move

# Reference time of the stored affinity sums (2017-07-14); 2^((t - E)/h) stays finite in float64
# until about E + 1000 half-lives (year 2100 with the default 30-day half-life).
AFFINITY_EPOCH_S = 1_500_000_000.0

_TYPE_FLAGS: dict[str, int] = {
    "impression": IMPRESSION,
    "click": INTERACTION | CLICK,
    "watch": INTERACTION,
    "like": INTERACTION | LIKE,
    "rate": INTERACTION,
    "hide": BLOCK,
    "report": BLOCK,
}


def event_flags(event: Event, config: FeatureConfig = DEFAULT_CONFIG) -> int:
    """Flag bits of one event."""
    flags = _TYPE_FLAGS[event.type]
    if event.type == "rate" and event.value is not None:
        flags |= RATING
        if event.value >= config.like_threshold:
            flags |= LIKE
    return flags


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
) -> bytes:
    """The events argument of the ingest script: one JSON array (one argument keeps the
    command cheap to encode; Redis decodes it in C with cjson).

    Each event is ``[event_id, user_id, item_id, ts, flags, weight, value, affinity, genres]``;
    ``genres`` maps item ids to genre column indices (items missing from it add no affinity).
    """
    ts = np.fromiter((e.timestamp for e in events), dtype=np.float64, count=len(events))
    growth = affinity_growth(ts, config.affinity_half_life_s)
    rows: list[list[object]] = []
    for e, g in zip(events, growth.tolist(), strict=True):
        weight = EVENT_WEIGHTS[e.type]
        cols = genres.get(e.item_id, ())
        aff = weight * g / len(cols) if cols and weight > 0 else 0.0
        rows.append(
            [e.event_id, e.user_id, e.item_id, e.timestamp, event_flags(e, config),
             weight, e.value or 0.0, aff, list(cols)]
        )  # fmt: skip
    return orjson.dumps(rows)
