"""An experiment's look, computed from a real ExposureJoin fed with served lists and events:
per-arm figures, the sequential lift, CUPED on pre-period clicks, SRM on a biased split, and
interleaving preferences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from services.rollouts.experiments.analysis import Carried, analyse, spec_of
from services.rollouts.exposure_join import ExposureJoin, ServedExposure, UnitArrays
from shared.events import Event

T0 = 1_800_000_000.0
EXP = "exp-1"


class JoinExposure:
    """The ExposureLog's reading methods over one in-memory join."""

    def __init__(self, join: ExposureJoin) -> None:
        self.join = join

    def arm_units(self, _experiment_id: str, arm: str) -> UnitArrays:
        return self.join.units(arm)

    def pre_period(self, _experiment_id: str, user_ids: Any) -> Any:
        return self.join.pre_period(user_ids)

    def team_clicks(self, _experiment_id: str, teams: tuple[str, ...]) -> tuple[Any, Any]:
        return self.join.team_clicks(teams)

    def by_day(self, _experiment_id: str) -> dict[str, dict[int, tuple[int, int]]]:
        return self.join.by_day()

    def list_figures(self, _experiment_id: str, arm: str) -> dict[str, Any]:
        return self.join.list_figures(arm)


def ev(n: int, user: str, request_id: str | None, kind: str, ts: float,
       item: str = "i1") -> Event:  # fmt: skip
    return Event.model_validate({"event_id": f"{user}-{request_id}-{kind}-{n}", "user_id": user,
                                 "item_id": item, "type": kind, "timestamp": ts,
                                 "request_id": request_id})  # fmt: skip


def ab_join(seed: int, n_users: int, rates: dict[str, float], shares: dict[str, float],
            pre_weight: float = 0.0) -> ExposureJoin:  # fmt: skip
    """Users with a latent activity level; clicks ~ Poisson(level x the arm's rate)."""
    rng = np.random.default_rng(seed)
    join = ExposureJoin(EXP, since_ts=T0, pre_since_ts=T0 - 86_400)
    arms, weights = list(shares), np.array(list(shares.values()))
    for u in range(n_users):
        user = f"u{u}"
        level = rng.gamma(2.0, 0.5)
        for i in range(rng.poisson(pre_weight * 4 * level)):  # activity before the experiment
            join.add_event(ev(i, user, f"old-{u}-{i}", "click", T0 - 3600), at=T0)
        arm = arms[int(rng.choice(len(arms), p=weights / weights.sum()))]
        for r in range(3):
            rid = f"q{u}-{r}"
            join.add_served(ServedExposure(rid, user, T0 + r, {EXP: arm}), at=T0 + r)
            join.add_event(ev(0, user, rid, "impression", T0 + r + 1), at=T0 + r)
            for c in range(rng.poisson(level * rates[arm])):
                join.add_event(ev(c, user, rid, "click", T0 + r + 2), at=T0 + r)
    return join


def test_a_better_arm_shows_a_positive_lift_and_cuped_narrows_it() -> None:
    join = ab_join(1, 3000, {"control": 0.5, "treatment": 0.6},
                   {"control": 0.5, "treatment": 0.5}, pre_weight=1.0)  # fmt: skip
    spec = spec_of(EXP, [("control", 0.5), ("treatment", 0.5)])
    look = analyse(spec, JoinExposure(join))
    assert not look["srm"]["mismatch"]
    row = look["comparisons"]["treatment"]["clicks_per_user"]
    assert row["lift"] > 0.05 and row["ci_low"] > 0, row  # +20% is found
    cuped = look["comparisons"]["treatment"]["cuped"]
    assert cuped["variance_reduction"] > 0.1, cuped  # pre-period clicks explain the level
    assert cuped["ci_low"] > 0
    # the always-valid test on the adjusted values: found, and narrower than on the raw ones
    sequential = cuped["sequential"]
    assert sequential["decision"] == "better" and sequential["ci_low"] > 0, sequential
    width = sequential["ci_high"] - sequential["ci_low"]
    assert width < row["ci_high"] - row["ci_low"], (sequential, row)
    assert look["arms"]["treatment"]["users"] + look["arms"]["control"]["users"] == 3000


def test_cuped_keeps_its_first_slope_across_looks() -> None:
    join = ab_join(4, 1500, {"control": 0.5, "treatment": 0.55},
                   {"control": 0.5, "treatment": 0.5}, pre_weight=1.0)  # fmt: skip
    spec = spec_of(EXP, [("control", 0.5), ("treatment", 0.5)])
    carried = Carried()
    first = analyse(spec, JoinExposure(join), carried)["comparisons"]["treatment"]["cuped"]
    carried.cuped_theta["treatment"] = 0.0  # a different slope: the next look must use it
    second = analyse(spec, JoinExposure(join), carried)["comparisons"]["treatment"]["cuped"]
    assert first["sequential"]["theta"] > 0 and second["sequential"]["theta"] == 0.0
    assert ("treatment", "cuped") in carried.tests


def test_the_sequential_lift_is_carried_between_looks() -> None:
    join = ab_join(2, 800, {"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5})
    spec = spec_of(EXP, [("a", 0.5), ("b", 0.5)])
    carried = Carried()
    first = analyse(spec, JoinExposure(join), carried)["comparisons"]["b"]["ctr"]
    second = analyse(spec, JoinExposure(join), carried)["comparisons"]["b"]["ctr"]
    # the always-valid interval is the intersection over looks: never wider at a later look
    assert second["ci_high"] - second["ci_low"] <= first["ci_high"] - first["ci_low"] + 1e-12
    assert ("b", "ctr") in carried.tests


def test_srm_is_caught_on_a_deliberately_biased_split() -> None:
    # planned 50/50, served 55/45: 2000 users make that a p far below 0.001
    join = ab_join(3, 2000, {"a": 0.5, "b": 0.5}, {"a": 0.55, "b": 0.45})
    look = analyse(spec_of(EXP, [("a", 0.5), ("b", 0.5)]), JoinExposure(join))
    assert look["srm"]["mismatch"] and look["srm"]["p_value"] < 0.001
    fair = ab_join(3, 2000, {"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5})
    assert not analyse(spec_of(EXP, [("a", 0.5), ("b", 0.5)]), JoinExposure(fair))["srm"][
        "mismatch"
    ]


def test_interleaving_credits_teams_and_tests_the_preference() -> None:
    rng = np.random.default_rng(4)
    join = ExposureJoin(EXP, since_ts=T0)
    teams = {f"i{k}": ("prod" if k % 2 else "cand") for k in range(10)}
    clicked: dict[str, int] = {"prod": 0, "cand": 0, "neutral": 0}
    for u in range(300):
        user, rid = f"u{u}", f"q{u}"
        join.add_served(
            ServedExposure(rid, user, T0, {EXP: "interleaved"}, None, teams, neutral=["i0", "i1"]),
            at=T0,
        )
        # the candidate's items are clicked twice as often
        for k in range(10):
            p = 0.2 if teams[f"i{k}"] == "cand" else 0.1
            if rng.random() < p:
                join.add_event(ev(k, user, rid, "click", T0 + 1, item=f"i{k}"), at=T0)
                clicked["neutral" if k < 2 else teams[f"i{k}"]] += 1
    spec = spec_of(EXP, [("prod", 0.5), ("cand", 0.5)], kind="interleaving")
    look = analyse(spec, JoinExposure(join))
    prefs = look["preferences"]
    assert prefs["cand"] > prefs["prod"] and sum(prefs.values()) == 300
    assert look["test"]["winner"] == "cand" and look["test"]["sign_test_p"] < 0.01
    # the two neutral items' clicks are counted but credit neither team
    assert look["credited_clicks"] == {"prod": clicked["prod"], "cand": clicked["cand"]}
    assert look["neutral_clicks"] == clicked["neutral"] > 0
    graded = look["graded"]
    assert graded["users"] == 300 and look["primary_test"] == "graded"
    assert graded["mean_margin"] == round((clicked["cand"] - clicked["prod"]) / 300, 6)
    assert graded["credit_share"]["cand"] == round(
        clicked["cand"] / (clicked["cand"] + clicked["prod"]), 6
    )
    assert graded["winner"] == look["winner"] == "cand" and graded["t_test_p"] < 1e-6
    assert graded["ci_low"] > 0 and graded["fixed_ci"][0] > graded["ci_low"]


def _interleaved_margins(join: ExposureJoin, margins: dict[str, int], ts: float) -> None:
    """One list per user whose clicks give it ``margins[user]`` (clicks on one team only)."""
    for user, margin in margins.items():
        rid = f"q-{user}-{ts}"
        teams = {f"{t}{k}": t for t in ("prod", "cand") for k in range(5)}
        join.add_served(ServedExposure(rid, user, ts, {EXP: "interleaved"}, None, teams), at=ts)
        team = "cand" if margin > 0 else "prod"
        for k in range(abs(margin)):
            join.add_event(ev(k, user, rid, "click", ts + 1, item=f"{team}{k}"), at=ts)


def test_the_graded_read_keeps_how_much_users_prefer_a_team() -> None:
    """100 users credit one click to prod, 100 three to cand: as many prefer each (the sign test
    sees no preference, p = 1), but the mean margin is (-1 + 3) / 2 = 1 with variance
    800 / 199, so t = 7.05; the always-valid test (tau = 0.05 sd, v = 0.0201) has log LR
    0.5 log(2/3) + tau^2 / (2 v (v + tau^2)) = 8.09, p = 3.1e-4: cand wins."""
    join = ExposureJoin(EXP, since_ts=T0)
    _interleaved_margins(join, {f"u{u}": (-1 if u % 2 else 3) for u in range(200)}, T0)
    spec = spec_of(EXP, [("prod", 0.5), ("cand", 0.5)], kind="interleaving")
    carried = Carried()
    look = analyse(spec, JoinExposure(join), carried)
    assert look["test"]["sign_test_p"] == 1.0 and look["test"]["winner"] is None
    graded = look["graded"]
    assert graded["mean_margin"] == 1.0 and graded["credit_share"]["cand"] == 0.75
    v, tau2 = (800 / 199) / 200, (0.05**2) * 800 / 199
    log_lr = 0.5 * np.log(v / (v + tau2)) + tau2 / (2 * v * (v + tau2))
    assert abs(graded["p_value"] - np.exp(-log_lr)) < 1e-6 and graded["p_value"] < 4e-4
    assert graded["winner"] == "cand" and graded["t_test_p"] < 1e-9
    # the next look carries the test: tau stays, the verdict stays
    _interleaved_margins(join, {f"v{u}": 0 for u in range(50)}, T0 + 10)
    again = analyse(spec, JoinExposure(join), carried)
    assert again["graded"]["users"] == 250 and again["graded"]["winner"] == "cand"
    assert carried.graded is not None and carried.graded.tau == pytest.approx(np.sqrt(tau2))


def test_the_interleaving_page_cli_and_gauges_show_the_graded_read() -> None:
    from prometheus_client import REGISTRY

    from services.rollouts.cli import show_analysis
    from services.rollouts.experiments.report import render
    from services.rollouts.experiments.watch import _export

    join = ExposureJoin(EXP, since_ts=T0)
    spec = spec_of(EXP, [("prod", 0.5), ("cand", 0.5)], kind="interleaving")
    carried, looks = Carried(), []
    for step in range(2):
        margins = {f"u{step}-{u}": (-1 if u % 2 else 3) for u in range(150)}
        _interleaved_margins(join, margins, T0 + step)
        looks.append({"ts": T0 + step, "figures": analyse(spec, JoinExposure(join), carried)})
    described = {
        "id": EXP,
        "kind": "interleaving",
        "layer": "rankers",
        "state": "running",
        "arms": [{"name": "prod"}, {"name": "cand"}],
    }
    page = render(described, looks)
    assert page.count("<svg") == 2 and "graded read (the verdict): winner <b>cand</b>" in page
    assert "credited clicks per user, cand minus prod" in page
    latest = looks[-1]["figures"]
    assert "graded (the verdict): winner cand; mean margin 1.0" in show_analysis(latest)
    _export(EXP, latest, "clicks_per_user")
    gauge = "cascade_experiment_figure"
    labels = {"experiment": EXP, "arm": "cand", "figure": "credit_margin"}
    assert REGISTRY.get_sample_value(gauge, labels) == 1.0
    labels["figure"] = "credit_share"
    assert REGISTRY.get_sample_value(gauge, labels) == 0.75


class TrackedJoin(JoinExposure):
    """The watch's view of the exposure log: tracking calls recorded, always caught up."""

    def __init__(self, join: ExposureJoin) -> None:
        super().__init__(join)
        self.started: dict[str, tuple[float, float]] = {}
        self.stopped: list[str] = []

    def start(self, rollout_id: str, since_ts: float, pre_period_s: float = 0.0) -> None:
        self.started[rollout_id] = (since_ts, pre_period_s)

    def stop(self, rollout_id: str) -> None:
        self.stopped.append(rollout_id)

    def caught_up(self, _rollout_id: str) -> bool:
        return True


async def test_the_watch_follows_looks_keeps_the_effect_over_time_and_renders_it() -> None:
    from services.gateway.experiments.assignment import ArmSpec
    from services.rollouts.experiments.plan import ExperimentPlan
    from services.rollouts.experiments.report import render
    from services.rollouts.experiments.store import Experiment
    from services.rollouts.experiments.watch import ExperimentWatch, LookStore

    join = ab_join(5, 1500, {"control": 0.5, "treatment": 0.6},
                   {"control": 0.5, "treatment": 0.5}, pre_weight=1.0)  # fmt: skip
    exposure, clock = TrackedJoin(join), [T0]
    watch = ExperimentWatch(exposure, LookStore(":memory:"), look_every_s=10, pre_period_s=3600,
                            clock=lambda: clock[0])  # fmt: skip
    plan = ExperimentPlan.model_validate(
        {"name": EXP, "arms": [{"name": "control", "weight": 0.5},
                               {"name": "treatment", "weight": 0.5}]})  # fmt: skip
    e = Experiment(EXP, plan, (ArmSpec("control", 0.5), ArmSpec("treatment", 0.5)),
                   state="running", range=(0.0, 1.0), started=T0)  # fmt: skip
    for step in range(3):
        clock[0] = T0 + 10 * step
        await watch.on_tick([e])
    assert exposure.started == {EXP: (T0, 3600)}
    looks = watch.store.looks(EXP)
    assert len(looks) == 3 and looks[-1]["figures"]["srm"]["checked"]
    e.state = "stopped"
    await watch.on_tick([e])
    assert exposure.stopped == [EXP] and len(watch.store.looks(EXP)) == 4  # a last look
    described = {"id": EXP, "kind": "ab", "layer": "default", "state": "stopped",
                 "arms": [{"name": "control"}, {"name": "treatment"}]}  # fmt: skip
    page = render(described, watch.store.looks(EXP))
    assert page.count("<svg") == 1 and "treatment vs control" in page and "CUPED" in page
    assert "Novelty" in page


def test_novelty_shows_the_lift_by_days_since_first_exposure() -> None:
    # the treatment's lift is +100% on a user's first day and gone from the second
    join = ExposureJoin(EXP, since_ts=T0)
    rng = np.random.default_rng(6)
    for u in range(400):
        user, arm = f"u{u}", ("control", "treatment")[u % 2]
        for day in range(3):
            rid = f"q{u}-{day}"
            ts = T0 + day * 86_400 + 10
            join.add_served(ServedExposure(rid, user, ts, {EXP: arm}), at=ts)
            rate = 0.6 if (arm == "treatment" and day == 0) else 0.3
            for c in range(rng.poisson(rate)):
                join.add_event(ev(c, user, rid, "click", ts + 1), at=ts)
    look = analyse(spec_of(EXP, [("control", 0.5), ("treatment", 0.5)]), JoinExposure(join))
    novelty = look["novelty"]
    assert [row["day"] for row in novelty] == [0, 1, 2]
    assert novelty[0]["treatment"]["lift"] > 0.5
    assert abs(novelty[2]["treatment"]["lift"]) < 0.35
    assert novelty[1]["control"]["requests"] == 200
