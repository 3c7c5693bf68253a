"""The simulator's events are what the events API accepts, and the same for the same answers."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from loadtests.simulator.behaviour import Behaviour, draws, request_rng
from loadtests.simulator.payloads import reaction_events
from loadtests.simulator.settings import BehaviourSettings
from shared.events import EventBatch, validation_context
from tests.utils.simulator import ground_truth

TIMING = BehaviourSettings()


def _events(
    user: str, items: list[str], request_id: str, seed: int, t0: float
) -> list[dict[str, Any]]:
    truth = ground_truth()
    rand = draws(request_rng(seed, user, 0, 0), len(items))[None]
    shown = np.ones((1, len(items)), dtype=bool)
    reaction = Behaviour(TIMING).react(truth.for_list(user, items), rand, shown)
    return reaction_events(reaction, items, user, request_id, t0, TIMING)


def _many_events(t0: float) -> list[dict[str, Any]]:
    truth = ground_truth()
    out = []
    for n, user in enumerate([*truth.known_users[:150], "sim-new-0", "sim-new-1"]):
        items = truth.top_items(user, 10)[:9] + ["added-at-run-time"]
        out += _events(user, items, f"req-{n}", seed=1, t0=t0)
    return out


def test_events_pass_the_events_api_schema_and_limits() -> None:
    now = time.time()
    events = _many_events(now)
    types = Counter(e["type"] for e in events)
    assert types["impression"] == 152 * 10 and types["click"] > 100 and types["like"] > 10
    assert types["watch"] == types["click"]
    for start in range(0, len(events), 1000):
        batch = EventBatch.model_validate(
            {"events": events[start : start + 1000]}, context=validation_context(now=now)
        )
        assert len(batch.events) == len(events[start : start + 1000])
    assert len({e["event_id"] for e in events}) == len(events)


def test_each_click_has_a_watch_with_the_dwell_and_comes_after_its_impression() -> None:
    events = _many_events(1_800_000_000.0)
    by_key = {(e["request_id"], e["position"], e["type"]): e for e in events}
    for (request, pos, kind), event in by_key.items():
        if kind in ("click", "hide"):
            assert event["timestamp"] > by_key[(request, pos, "impression")]["timestamp"]
        if kind == "click":
            watch = by_key[(request, pos, "watch")]
            assert watch["value"] >= 1.0 and watch["timestamp"] > event["timestamp"]
        if kind == "like":
            assert (request, pos, "click") in by_key
        assert event["position"] == pos and event["item_id"]
    assert not any((r, p, "click") in by_key for r, p, k in by_key if k == "hide")


def test_the_same_answers_give_the_same_events() -> None:
    truth = ground_truth()
    items = truth.top_items("7", 10)
    first = _events("7", items, "req-1", seed=9, t0=1_800_000_000.0)
    assert first == _events("7", items, "req-1", seed=9, t0=1_800_000_000.0)
    others = {repr(_events("7", items, "req-1", seed=s, t0=1_800_000_000.0)) for s in range(20)}
    assert len(others) > 5  # other seeds, other actions
