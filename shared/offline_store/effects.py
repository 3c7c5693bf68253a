"""What each logged event contributes to the user and item features, as vectorised flags.

The offline log's columns resolved through the one declaration of event semantics
(``shared.event_semantics``), the same table the online ingest flags are built from; the
point-in-time builder (``pit``) reads only these arrays, never event type names. A null value
is no value (a ``rate`` event without one is no rating).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.event_semantics import EVENT_SEMANTICS, EventSemantics, ResolvedEffects
from shared.features.config import DEFAULT_CONFIG, FeatureConfig

EventEffects = ResolvedEffects
"""Per-event flags and amounts (arrays aligned with the events they were computed from)."""


def event_effects(
    types: np.ndarray,
    values: np.ndarray,
    cfg: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> EventEffects:
    """Flags of events given their ``type`` strings and ``value`` floats (NaN = no value)."""
    return semantics.resolve(np.asarray(types, dtype=object), values, cfg.like_threshold)


def log_effects(
    events: pa.Table,
    cfg: FeatureConfig = DEFAULT_CONFIG,
    semantics: EventSemantics = EVENT_SEMANTICS,
) -> EventEffects:
    """Flags of the events of an offline-log table (its ``type`` and nullable ``value``)."""
    values = pc.fill_null(events["value"].cast(pa.float64()), float("nan"))
    types = np.asarray(events["type"].to_pylist(), dtype=object)
    return event_effects(types, values.to_numpy(zero_copy_only=False), cfg, semantics)
