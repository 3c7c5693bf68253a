"""Arms compared without the live stack: rankers, the same ground truth and the same behaviour.

Users are split into arms by the gateway's salted hash (``blake2b(f"{salt}:{user_id}")`` as a
number in [0, 1) against the cumulative shares), each gets one session of ``requests_per_user``
requests, and every reaction is drawn with the driver's per-request seeding, so the outcome of
a user depends only on the seed and the lists they were shown. All users' lists are simulated
at once per request index (tens of thousands of users per second beyond the rankers' own cost).
Repeat over seeds and salts to measure how often an analysis of the arms decides wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadtests.simulator.behaviour import N_DRAWS, Behaviour, draws, request_rng
from loadtests.simulator.ground_truth import UNKNOWN, GroundTruth
from loadtests.simulator.rankers import Ranker

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
PER_USER = ("impressions", "clicks", "likes", "hides", "watch_s", "expected_clicks")


def unit_interval(salt: str, key: str) -> float:
    """A uniform number in [0, 1) from a salted hash (the gateway's rollout assignment)."""
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def assign_arms(user_ids: Sequence[str], salt: str, shares: Sequence[float]) -> I64:
    """Arm index per user: the first arm whose cumulative share exceeds the user's hash."""
    edges = np.cumsum(np.asarray(shares, dtype=np.float64) / float(np.sum(shares)))
    u = np.array([unit_interval(salt, user) for user in user_ids])
    arms: I64 = np.minimum(np.searchsorted(edges, u, side="right"), len(edges) - 1)
    return arms


@dataclass(frozen=True)
class OfflineOutcome:
    """Per-user outcomes (aligned arrays) and per-arm click-through by position."""

    arms: tuple[str, ...]
    user_ids: list[str]
    arm: I64  # (users,) index into arms
    outcomes: dict[str, F64]  # PER_USER name -> (users,) totals over the user's session
    clicks_by_position: I64  # (arms, k)
    impressions_by_position: I64  # (arms, k)

    def per_arm(self) -> dict[str, dict[str, float]]:
        """Users and the per-user mean (and its standard error) of every outcome, by arm."""
        out: dict[str, dict[str, float]] = {}
        for a, name in enumerate(self.arms):
            mask = self.arm == a
            n = int(mask.sum())
            stats: dict[str, float] = {"users": n}
            for key, values in self.outcomes.items():
                v = values[mask]
                stats[f"{key}_per_user"] = float(v.mean()) if n else 0.0
                stats[f"{key}_per_user_se"] = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
            out[name] = stats
        return out

    def difference(self, metric: str, a: str, b: str) -> tuple[float, float]:
        """(mean per user of ``a`` - of ``b``, its standard error) for one outcome."""
        stats = self.per_arm()
        diff = stats[a][f"{metric}_per_user"] - stats[b][f"{metric}_per_user"]
        se = np.hypot(stats[a][f"{metric}_per_user_se"], stats[b][f"{metric}_per_user_se"])
        return diff, float(se)


def simulate_offline(
    rankers: Mapping[str, Ranker],
    truth: GroundTruth,
    users: Sequence[str],
    behaviour: Behaviour | None = None,
    *,
    k: int = 10,
    requests_per_user: int = 1,
    seed: int = 0,
    salt: str = "offline",
    shares: Sequence[float] | None = None,
) -> OfflineOutcome:
    """Split ``users`` into the rankers' arms and simulate one session per user."""
    behaviour = behaviour or Behaviour()
    names = tuple(rankers)
    arm = assign_arms(users, salt, shares or [1.0] * len(names))
    rows = np.array([truth.user_row(u) for u in users], dtype=np.int64)
    n_items = len(truth.tables.item_ids)
    done = np.zeros((len(users), n_items + 1), dtype=bool)  # last column: unknown items
    totals = {key: np.zeros(len(users)) for key in PER_USER}
    clicks_pos = np.zeros((len(names), k), dtype=np.int64)
    shown_pos = np.zeros((len(names), k), dtype=np.int64)
    for request in range(requests_per_user):
        cols, shown, rand = _lists(rankers, names, arm, users, truth, k, seed, request)
        cell = np.where(cols == UNKNOWN, n_items, cols)
        blocked = done[np.arange(len(users))[:, None], cell] & shown
        reaction = behaviour.react(truth.lookup(rows, cols), rand, shown, blocked)
        acted = (reaction.clicked | reaction.hidden) & (cols != UNKNOWN)
        done[np.nonzero(acted)[0], cols[acted]] = True
        totals["impressions"] += shown.sum(axis=1)
        totals["clicks"] += reaction.clicked.sum(axis=1)
        totals["likes"] += reaction.liked.sum(axis=1)
        totals["hides"] += reaction.hidden.sum(axis=1)
        totals["watch_s"] += reaction.watch_s.sum(axis=1)
        totals["expected_clicks"] += reaction.expected_clicks
        for a in range(len(names)):
            clicks_pos[a] += reaction.clicked[arm == a].sum(axis=0)
            shown_pos[a] += shown[arm == a].sum(axis=0)
    return OfflineOutcome(names, list(users), arm, totals, clicks_pos, shown_pos)


def _lists(
    rankers: Mapping[str, Ranker],
    names: tuple[str, ...],
    arm: I64,
    users: Sequence[str],
    truth: GroundTruth,
    k: int,
    seed: int,
    request: int,
) -> tuple[I64, npt.NDArray[np.bool_], F64]:
    """(item columns, shown mask, draws) of every user's list at one request index."""
    cols = np.full((len(users), k), UNKNOWN, dtype=np.int64)
    shown = np.zeros((len(users), k), dtype=bool)
    rand = np.empty((len(users), N_DRAWS, k))
    for i, user in enumerate(users):
        items = list(rankers[names[arm[i]]](user, k))[:k]
        cols[i, : len(items)] = truth.item_columns(items)
        shown[i, : len(items)] = True
        rand[i] = draws(request_rng(seed, user, 0, request), k)
    return cols, shown, rand
