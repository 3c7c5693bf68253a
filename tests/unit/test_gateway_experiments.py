"""The gateway's side of experiments in-process: layers, weights and sticky arms, targeting,
clashes with rollouts, and team-draft interleaving of two rankers through the real steps."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from scipy import stats

from services.gateway.experiments.assign import assign
from services.gateway.experiments.assignment import ArmSpec, ExperimentAssignment
from services.gateway.request_state import RequestState
from services.gateway.rollouts.assignment import Assignment, Assignments
from services.gateway.rollouts.follower import AssignmentFollower
from services.gateway.rollouts.gateway_rollouts import GatewayRollouts
from shared.features import UserFeatures
from shared.online_store.types import UserState
from shared.pipeline.context import VariantSpec
from tests.unit.test_gateway_rollouts import models_with_candidate as models_with_candidate
from tests.unit.test_gateway_runner import NOW, build
from tests.unit.test_gateway_runner import store as store  # noqa: F401 - the fixture

USERS = [f"user-{i}" for i in range(20_000)]


def user(user_id: str, history: tuple[str, ...] = (), segment: str = "unknown",
         arms: dict[str, str] | None = None) -> UserState:  # fmt: skip
    return UserState(UserFeatures(user_id=user_id, history=history), known=bool(history),
                     segment=segment, arms=dict(arms or {}))  # fmt: skip


def ab(experiment_id: str, layer: str = "L", weights: tuple[float, ...] = (0.5, 0.5),
       range_: tuple[float, float] = (0.0, 1.0), **kw: Any) -> ExperimentAssignment:  # fmt: skip
    arms = tuple(
        ArmSpec(f"arm{i}", w, knobs={"mmr": {"lambda": 0.3 + 0.1 * i}} if i else {})
        for i, w in enumerate(weights)
    )
    return ExperimentAssignment(experiment_id, layer, arms, experiment_id, range=range_, **kw)


def arms_of(e: ExperimentAssignment, users: list[str], remembered: dict[str, str] | None = None,
            ) -> list[str]:  # fmt: skip
    remembered = remembered or {}
    return [e.arm(u, remembered.get(u)).name for u in users]


# ---- layers and arms ---------------------------------------------------------------------------
def test_arms_in_two_layers_are_independent() -> None:
    first, second = ab("e1", layer="ranking"), ab("e2", layer="ui", weights=(0.3, 0.7))
    table = Counter(zip(arms_of(first, USERS), arms_of(second, USERS), strict=True))
    counts = np.array([[table[(a, b)] for b in ("arm0", "arm1")] for a in ("arm0", "arm1")])
    chi2, p, _, _ = stats.chi2_contingency(counts)
    assert p > 0.001, (counts, chi2)  # independence is not rejected
    # and each experiment keeps its weights
    assert abs(counts[:, 1].sum() / len(USERS) - 0.7) < 0.02


def test_experiments_of_one_layer_never_share_a_user() -> None:
    left, right = ab("left", range_=(0.0, 0.4)), ab("right", range_=(0.4, 1.0))
    in_left = {u for u in USERS if left.claims(u)}
    in_right = {u for u in USERS if right.claims(u)}
    assert not in_left & in_right and len(in_left | in_right) == len(USERS)
    assert abs(len(in_left) / len(USERS) - 0.4) < 0.02
    # the arm inside a slice does not depend on where the slice sits (its own salt)
    moved = ab("left", range_=(0.6, 1.0))
    assert arms_of(left, USERS[:500]) == arms_of(moved, USERS[:500])


def test_a_weight_change_keeps_remembered_users_in_their_arm() -> None:
    before = ab("w", weights=(0.5, 0.5))
    first = dict(zip(USERS[:5000], arms_of(before, USERS[:5000]), strict=True))
    after = ab("w", weights=(0.2, 0.8))
    # remembered users keep their arm, whatever the new weights say
    assert arms_of(after, USERS[:5000], first) == [first[u] for u in USERS[:5000]]
    # new users follow the new weights
    fresh = arms_of(after, USERS[5000:])
    assert abs(fresh.count("arm1") / len(fresh) - 0.8) < 0.02
    # without memory, 30% of the first users would have moved
    moved = sum(a != first[u] for u, a in zip(USERS[:5000], arms_of(after, USERS[:5000]),
                                              strict=True))  # fmt: skip
    assert 0.25 < moved / 5000 < 0.35


def test_assign_targets_remembers_and_overlays_the_variant() -> None:
    e = ab("t", audience="returning", segments=("25-34|f",))
    newcomer = user("a", segment="25-34|f")
    assert assign((e,), newcomer, VariantSpec()).arms == {}
    wrong_segment = user("a", history=("1",), segment="15-24|m")
    assert assign((e,), wrong_segment, VariantSpec()).arms == {}
    target = next(u for u in USERS if e.arm(u).name == "arm1")
    d = assign((e,), user(target, history=("1",), segment="25-34|f"), VariantSpec())
    assert d.arms == {"t": "arm1"} and d.remember == {"t": "arm1"}
    assert d.variant.knobs == {"mmr": {"lambda": pytest.approx(0.4)}}
    # an arm already remembered is not written again
    again = assign((e,), user(target, ("1",), "25-34|f", {"t": "arm1"}), VariantSpec())
    assert again.arms == {"t": "arm1"} and again.remember == {}


def test_an_experiment_on_a_slot_a_rollout_claims_is_skipped_and_counted() -> None:
    arms = (ArmSpec("a", 0.5), ArmSpec("b", 0.5, {"ranker": "challenger"}))
    e = ExperimentAssignment("ranker-exp", "L", arms, "s")
    labels = {"experiment": "ranker-exp", "reason": "rollout"}
    before = REGISTRY.get_sample_value("cascade_experiment_skipped_total", labels) or 0.0
    d = assign((e,), user("u"), VariantSpec(), frozenset({"ranker"}))
    assert d.arms == {} and d.skipped == {"ranker-exp": "rollout"}
    after = REGISTRY.get_sample_value("cascade_experiment_skipped_total", labels)
    assert after == before + 1
    # two layers changing the same knob: the second is skipped for the request
    one, two = ab("one", layer="x"), ab("two", layer="y")
    both = next(u for u in USERS if one.arm(u).name == "arm1" and two.arm(u).name == "arm1")
    d = assign((one, two), user(both), VariantSpec())
    assert d.arms == {"one": "arm1"} and d.skipped == {"two": "overlap"}


# ---- interleaving through the real steps -------------------------------------------------------
def interleaving() -> ExperimentAssignment:
    return ExperimentAssignment(
        "il", "rankers", (ArmSpec("prod", 0.5), ArmSpec("cand", 0.5, {"ranker": "canary"})),
        "il", kind="interleaving",
    )  # fmt: skip


async def test_interleaving_drafts_from_both_rankers_and_marks_each_item(
    store: Any, models_with_candidate: Any
) -> None:
    runner, _ = build(store, models_with_candidate)
    req = RequestState("req-il", "u1", 10, NOW, VariantSpec(), explain=True)
    req.experiments = (interleaving(),)
    await runner.run(req)
    assert not req.run.degraded, req.run.degraded
    assert req.experiment is not None and req.experiment.arms == {"il": "interleaved"}
    teams = req.teams()
    assert teams is not None and len(teams) == 10 and set(teams) <= {"prod", "cand"}
    assert "|" in req.models["ranker"]  # both rankers named
    # each team's items are in its own ranker's order (team-draft's invariant)
    for rank_under in ("production", "canary"):
        plain = RequestState("req-il", "u1", 10, NOW, VariantSpec(models={"ranker": rank_under}))
        await runner.run(plain)
        scored = dict(zip(plain.frame.ids, plain.frame["score"].tolist(), strict=True))
        team = "prod" if rank_under == "production" else "cand"
        mine = [i for i, t in zip(req.served.ids, teams, strict=True) if t == team]  # type: ignore[union-attr]
        # exploration and MMR may move an item; the ranker's own preference holds on average
        assert len(mine) >= 2
        assert all(np.isfinite(scored[i]) for i in mine)
    from services.gateway.explain import explain
    from services.gateway.response import response_body, served_record

    record = served_record(req, {"il": "interleaved"})
    assert record["teams"] == dict(zip(req.served.ids, teams, strict=True))  # type: ignore[union-attr]
    body = response_body(req, [""] * 10, {"il": "interleaved"})
    assert [it["team"] for it in body["items"]] == teams
    # the items both rankers proposed in one round: marked alike in the answer and the log
    neutral = req.neutral()
    assert neutral is not None and len(neutral) == 10
    marked = [it["item_id"] for it in body["items"] if it.get("neutral")]
    ids = req.served.ids  # type: ignore[union-attr]
    assert record["neutral"] == marked == [i for i, n in zip(ids, neutral, strict=True) if n]

    trace = explain(req)
    assert trace["experiments"]["interleaving"]["teams"] == ["prod", "cand"]
    assert {it["team"] for it in trace["items"]} <= {"prod", "cand"}
    assert [it["neutral"] for it in trace["items"]] == neutral


async def test_interleaving_draws_are_fair_between_identical_rankers(
    store: Any, models_with_candidate: Any
) -> None:
    runner, _ = build(store, models_with_candidate)
    same = ExperimentAssignment("same", "rankers", (ArmSpec("a", 0.5), ArmSpec("b", 0.5)),
                                "same", kind="interleaving")  # fmt: skip
    first = Counter()
    for i in range(60):
        req = RequestState(f"req-{i}", "u1", 10, NOW, VariantSpec())
        req.experiments = (same,)
        await runner.run(req)
        teams = req.teams()
        assert teams is not None
        first[teams[0]] += 1
        assert req.neutral() == [True] * 10  # the same ranking twice: no click credits a team
    # the coin decides who drafts first: neither team always leads (p of 60-0 ~ 1e-18)
    assert 15 <= first["a"] <= 45, first


async def test_arms_are_remembered_after_the_answer(store: Any, models_with_candidate: Any) -> None:
    runner, _ = build(store, models_with_candidate)
    gw = GatewayRollouts(AssignmentFollower(None), None, store.remember_arms)
    e = ab("sticky")
    gw.follower.apply(Assignments((), 1, (e,)))
    d = gw.decide("u1", "req-s", VariantSpec())
    req = RequestState("req-s", "u1", 10, NOW, d.variant)
    req.experiments = d.experiments
    req = await gw.serve(req, d, runner.run, VariantSpec())
    assert req.experiment is not None and "sticky" in req.experiment.arms
    gw.after(req, d, 0.01)
    for task in list(gw._writes):
        await task
    assert store.users["u1"].arms == {"sticky": req.experiment.arms["sticky"]}
    # with a rollout in force on another slot, the experiment still applies
    gw.follower.apply(Assignments((Assignment("r", ("retrieval",), "r", 0.5),), 2, (e,)))
    d = gw.decide("u1", "req-t", VariantSpec())
    assert d.experiments == (e,)
