"""The shadow's off-policy record: production's exploration slots and each ranker's pick."""

from __future__ import annotations

import numpy as np

from services.gateway.request_state import RequestState
from services.gateway.rollouts.shadow import best_in_pool, off_policy_slots
from shared.frame import Frame
from shared.pipeline.context import VariantSpec

IDS = [f"i{n}" for n in range(8)]


def ranked(scores: list[float]) -> RequestState:
    req = RequestState("q1", "u1", 3, 0.0, VariantSpec())
    req.frame = Frame(list(IDS), {"score": np.array(scores, dtype=np.float32)})
    return req


def test_each_ranker_picks_its_best_pool_item_and_the_shown_slot_is_marked() -> None:
    prod = ranked([8, 7, 6, 5, 4, 3, 2, 1])
    prod.explore_pool_rows = np.array([3, 4, 5, 6])  # items i3..i6
    prod.served = Frame(["i0", "i5", "i1"], {
        "explored": np.array([False, True, False]),
        "propensity": np.array([1.0, 0.25, 1.0], dtype=np.float32),
    })  # fmt: skip
    reversed_ = ranked([1, 2, 3, 4, 5, 6, 7, 8])
    assert best_in_pool(prod, ["i3", "i4", "i5", "i6"]) == "i3"
    assert best_in_pool(reversed_, ["i3", "i4", "i5", "i6"]) == "i6"
    assert off_policy_slots(prod, reversed_) == [
        {"item": "i5", "p": 0.25, "candidate": False, "production": False}
    ]
    likes_i5 = ranked([9, 0, 0, 0, 0, 5, 0, 0])
    slot = off_policy_slots(prod, likes_i5)[0]
    assert slot["candidate"] is True and slot["production"] is False


def test_no_record_without_exploration_or_without_support() -> None:
    prod = ranked([8, 7, 6, 5, 4, 3, 2, 1])
    prod.served = Frame(["i0"], {"explored": np.array([False]), "propensity": np.ones(1)})
    assert off_policy_slots(prod, ranked([1] * 8)) == []  # production did not explore
    prod.explore_pool_rows = np.array([3, 4])
    other = RequestState("q1", "u1", 3, 0.0, VariantSpec())
    other.frame = Frame(["x1", "x2"], {"score": np.ones(2, dtype=np.float32)})
    assert off_policy_slots(prod, other) == []  # a shadow that scored none of the pool
