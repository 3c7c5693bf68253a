"""Segment popularity: what the users of a segment engaged with, decayed with its age.

The one definition every path computes: online the ingest script keeps it in Redis
(``shared/online_store/ingest.lua``, read by ``OnlineStore.popular_in_segment``), offline
``shared.offline_store.popularity`` replays the event log, training
``FeatureBuilder.segment_popularity`` its events:

    popularity(segment, item, now) = Σ_e  w_e · 2^(−(now − t_e) / h)

over the events e on the item before ``now`` by users of the segment (``all``: every user),
with w_e the event type's ``affinity_weight`` (``shared/event_semantics.py``; only events with
w_e > 0 count) and h the half-life (``StoreConfig.segment_half_life_s``). A user's segment is
:func:`user_segment` of their profile (``unknown`` without one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.features.profile import age_bucket

ALL_SEGMENT = "all"  # popularity over every user
UNKNOWN_SEGMENT = "unknown"  # users without a profile
# A week: "popular among users like you" moves slower than trending (6 h), and a month-old
# burst still counts an eighth.
SEGMENT_HALF_LIFE_S = 7 * 86_400.0

Popularity = dict[str, dict[str, float]]  # segment -> item id -> popularity


def user_segment(age: float | None, gender: str | None) -> str:
    """Popularity segment of a user: age bucket × gender, e.g. ``25-34|f``."""
    if (age is None or age != age) and not gender:  # age != age: NaN (a frame's missing age)
        return UNKNOWN_SEGMENT
    sex = str(gender).strip().lower()[:1] if gender else "u"
    return f"{age_bucket(age)}|{sex or 'u'}"


def segment_popularity(
    segments: Sequence[str],
    item_ids: Sequence[str],
    weights: np.ndarray,
    ts: np.ndarray,
    now: float,
    half_life_s: float = SEGMENT_HALF_LIFE_S,
) -> Popularity:
    """Popularity at ``now`` per segment (and ``all``) from aligned per-event arrays: the
    segment of each event's user, its item, its weight and its time."""
    weights = np.asarray(weights, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.float64)
    keep = (weights > 0) & (ts < now)
    decayed = weights[keep] * np.exp2(-(now - ts[keep]) / half_life_s)
    items = np.asarray(item_ids, dtype=object)[keep]
    segs = np.asarray(segments, dtype=object)[keep]
    out: Popularity = {}
    for group, members in ((ALL_SEGMENT, np.ones(len(items), dtype=bool)), *_by_value(segs)):
        table = out.setdefault(group, {})
        for item, value in zip(items[members].tolist(), decayed[members].tolist(), strict=True):
            table[item] = table.get(item, 0.0) + value
    return {s: t for s, t in out.items() if t}


def _by_value(values: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(value, mask) for each distinct value."""
    return [(str(v), values == v) for v in dict.fromkeys(values.tolist())]
