"""Stand-in rankers of known quality, to check the simulator and size experiments offline."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

from loadtests.simulator.ground_truth import GroundTruth

Ranker = Callable[[str, int], Sequence[str]]  # (user_id, k) -> item ids, best first


def oracle_ranker(truth: GroundTruth) -> Ranker:
    """The ground truth's own top k, best first: the most expected clicks a list can get."""
    return truth.top_items


def popularity_ranker(truth: GroundTruth) -> Ranker:
    """The same most-rated items for everyone."""
    return lambda _user, k: truth.popular_items(k)


def random_ranker(truth: GroundTruth, seed: int = 0) -> Ranker:
    """k distinct catalogue items drawn uniformly, fresh at each call, fixed per (seed, user,
    call number of that user)."""
    items = truth.tables.item_ids
    calls: dict[str, int] = {}

    def rank(user_id: str, k: int) -> list[str]:
        n = calls[user_id] = calls.get(user_id, -1) + 1
        digest = hashlib.blake2b(f"{seed}:{user_id}:{n}".encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        picked: list[str] = items[rng.choice(len(items), size=k, replace=False)].tolist()
        return picked

    return rank
