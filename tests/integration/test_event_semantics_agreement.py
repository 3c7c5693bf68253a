"""The three event-to-feature paths compute the same features from the same events.

Each seeded sequence (``tests/utils/event_sequences.py``: every event type, ratings on both
sides of ``like_threshold``, on it and without a value, repeated items, ties within a second,
late arrivals, redeliveries, a history longer than ``hist_len``) goes through
(``tests/utils/feature_paths.py``):

- online: the real Lua ingest script in a real Redis (``StoreWriter``, batches in arrival order,
  redeliveries included), read back with ``OnlineStore.get_user`` / ``get_items`` at ``now``;
- offline: the Parquet log as the offline sink writes it (redeliveries included), then
  ``build_training_set`` with labels at ``now``, after every event;
- training: ``FeatureBuilder`` on the distinct events as a typed frame (it reads a clean log:
  deduplication is the log's job, as it is for MovieLens).

They are compared field by field, and a disagreement names the sequence, the user or item and
the field: user ``history`` (the last ``hist_len``, oldest first), ``n_events``, ``rating_sum``,
``n_ratings``, ``last_event_ts`` and raw ``genre_affinity`` decayed to ``now``; item windowed
counts (1h, 24h, 7d), ``count_total``, ``like_count`` and ``rating_count``.

Segment popularity (``shared.features.popularity``: each segment's time-decayed engagement per
item, and ``all``) is compared on all three paths: online the ingest script's decaying sets
read with ``popular_in_segment`` at ``now``, offline ``log_segment_popularity`` over the log,
training ``FeatureBuilder.segment_popularity``; the users carry profiles in two segments, and
every third none (``unknown``). What only some paths model is compared where it exists: item
``impressions`` and ``clicks`` online and offline (the training builder keeps no CTR); the
user's ``seen`` and ``blocked`` sets and fatigue counts exist only online, so they are checked
against the declaration read directly. Trending is a serving-only signal with no offline
counterpart. Timestamps are whole seconds, the training builder's resolution (MovieLens').

Found with this test and fixed: the online history was in arrival order, so a late event put
its item last, where offline and training (time order) put it where it happened; it is now a
sorted set by first-interaction time, with ties in item order on every path. Segment
popularity never decayed online (a sum of raw weights); it now decays with a week's half-life
on every path.

The last tests prove the check has teeth: changing one type in the declaration changes what
every path computes (they derive from it), and paths fed different declarations disagree.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import redis

from shared.event_semantics import EVENT_SEMANTICS
from shared.features.config import DEFAULT_CONFIG
from tests.utils.event_sequences import event_sequence
from tests.utils.feature_paths import FIELDS, all_paths, disagreements, offline, online, training

pytestmark = pytest.mark.integration

SEQUENCES = {
    s.name: s
    for s in (
        event_sequence("in-order", seed=1, n_events=300, n_items=12, n_users=5, shuffled=False),
        event_sequence("shuffled", seed=2, n_events=300, n_items=12, n_users=5),
        event_sequence("long-history", seed=3, n_events=500, n_items=90, n_users=2),
        event_sequence("repeats", seed=4, n_events=250, n_items=4, n_users=3),
        event_sequence("hour-ties", seed=5, n_events=300, n_items=10, n_users=4, grid_s=3600),
    )
}


def test_the_sequences_exercise_what_the_paths_must_agree_on() -> None:
    events = [e for s in SEQUENCES.values() for e in s.events]
    assert {e.type for e in events} == set(EVENT_SEMANTICS.effects)
    ratings = {e.value for e in events if e.type == "rate"}
    threshold = DEFAULT_CONFIG.like_threshold
    assert None in ratings and threshold in ratings
    assert min(r for r in ratings if r) < threshold < max(r for r in ratings if r)
    for s in SEQUENCES.values():
        arrival = [e.timestamp for batch in s.deliveries for e in batch]
        assert sum(len(b) for b in s.deliveries) > len(s.events)  # redeliveries
        assert s.name == "in-order" or arrival != sorted(arrival)  # late arrivals
    long = SEQUENCES["long-history"]
    pairs = {(e.user_id, e.item_id) for e in long.events if EVENT_SEMANTICS[e.type].interaction}
    assert max(Counter(u for u, _ in pairs).values()) > DEFAULT_CONFIG.hist_len


@pytest.mark.parametrize("name", list(SEQUENCES))
async def test_online_offline_and_training_features_agree(
    name: str, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    seq = SEQUENCES[name]
    paths = await all_paths(redis_client, redis_url, tmp_path / "log", seq, EVENT_SEMANTICS)
    problems = disagreements(name, paths)
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems[:30])
    # Not vacuous: every compared field is moved somewhere in the sequence.
    for kind, fields in FIELDS.items():
        for field in fields:
            assert any(_nonzero(v[field]) for v in getattr(paths[0], kind).values()), field


def _nonzero(value: object) -> bool:
    """A count above 0, a non-empty set or history, an affinity with some weight."""
    return bool(np.any(value)) if isinstance(value, np.ndarray | list) else bool(value)


CHANGES = {
    "watch is no interaction": ("watch", {"interaction": False, "affinity_weight": 0.0}),
    "hide is an interaction": ("hide", {"interaction": True, "affinity_weight": 0.5}),
    "a click is a like": ("click", {"like": True}),
    "rate carries no rating": ("rate", {"rating": False}),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_changing_the_declaration_changes_every_path_alike(
    change: str, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Every path derives from the declaration: edit one type and all three move, together."""
    event_type, fields = CHANGES[change]
    changed = EVENT_SEMANTICS.replace(event_type, **fields)
    seq = SEQUENCES["shuffled"]
    before = await all_paths(redis_client, redis_url, tmp_path / "a", seq, EVENT_SEMANTICS)
    after = await all_paths(redis_client, redis_url, tmp_path / "b", seq, changed)
    for old, new in zip(before[:3], after[:3], strict=True):
        assert disagreements(change, [old, new]), f"{new.path} ignored the change: {change}"
    problems = disagreements(change, after)
    assert not problems, "\n".join(problems[:30])


async def test_paths_fed_different_declarations_are_told_apart(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The comparison fails, naming sequence, entity and field, when one path's table differs."""
    seq = SEQUENCES["in-order"]
    changed = EVENT_SEMANTICS.replace("watch", interaction=False, affinity_weight=0.0)
    mixed = [
        await online(redis_client, redis_url, seq, EVENT_SEMANTICS),
        offline(tmp_path, seq, changed),
        training(seq, EVENT_SEMANTICS),
    ]
    problems = disagreements(seq.name, mixed)
    named = {p.split(": ")[1].split()[-1] for p in problems}
    assert {"n_events", "history", "count_total", "genre_affinity"} <= named, problems[:5]
    assert all(p.startswith("in-order: ") and "offline=" in p for p in problems), problems[:5]
