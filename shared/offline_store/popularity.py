"""Segment popularity from the offline log: what the online store's ``segpop`` sets hold.

The log's events before ``now`` (deduplicated by event_id, as ``EventLog`` reads them),
weighted by the declared event semantics and decayed with the definition of
``shared.features.popularity``; each event counts for its user's segment (from the profiles
given) and for ``all``. ``tests/integration/test_event_semantics_agreement.py`` holds it to
the online store and the training feature builder.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shared.event_semantics import EVENT_SEMANTICS, EventSemantics
from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.popularity import (
    SEGMENT_HALF_LIFE_S,
    UNKNOWN_SEGMENT,
    Popularity,
    segment_popularity,
)
from shared.offline_store.effects import log_effects
from shared.offline_store.sources import EventSource, load


def log_segment_popularity(
    source: EventSource,
    user_segments: Mapping[str, str],
    now: float,
    half_life_s: float = SEGMENT_HALF_LIFE_S,
    config: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> Popularity:
    """Segment -> item -> popularity at ``now``; ``user_segments`` maps user ids to their
    segment (``shared.features.popularity.user_segment`` of the profile; a user missing from
    it is ``unknown``, as a user without a profile is online)."""
    events = load(source, now)
    fx = log_effects(events, config, semantics)
    users = events["user_id"].to_pylist()
    segments = [user_segments.get(u, UNKNOWN_SEGMENT) for u in users]
    ts = events["timestamp"].to_numpy(zero_copy_only=False).astype(np.float64)
    return segment_popularity(
        segments, events["item_id"].to_pylist(), fx.weight, ts, now, half_life_s
    )
