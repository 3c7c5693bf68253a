"""Experiments in the controller: plans, arms checked against the gateway, conflicts, layers.

The book runs with a real SQLite store, the real gateway declarations (config/variants.yaml
and the knob table every gateway builds) and a stand-in for MLflow; the controller it belongs
to is the real one, so the rollout/experiment conflicts are checked both ways. Over HTTP with
a real MLflow: tests/integration/test_experiments_api.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.rollouts.cli import parse_weights
from services.rollouts.controller import Controller, Refusal
from services.rollouts.experiments.allocation import first_fit, free_gaps
from services.rollouts.experiments.book import ExperimentBook
from services.rollouts.experiments.declarations import GatewayDeclarations
from services.rollouts.experiments.declared_file import load_declared
from services.rollouts.experiments.plan import ExperimentPlan
from services.rollouts.experiments.store import ExperimentStore
from services.rollouts.plan import Plan, Step
from services.rollouts.store import RolloutStore
from shared.models.registry import RegistryUnavailableError
from shared.platform.settings import StartupError

REPO = Path(__file__).resolve().parents[2]


class Registry:
    """Aliases per registry part, in memory (``up`` False: MLflow unreachable)."""

    def __init__(self) -> None:
        self.aliases = {(p, "production"): "1" for p in ("ranker", "user_tower", "item_index")}
        self.aliases[("ranker", "challenger")] = "2"
        self.up = True
        self.lookups = 0

    def _check_up(self) -> None:
        if not self.up:
            raise RegistryUnavailableError("MLflow unreachable (test)")

    def alias_version(self, part: str, alias: str) -> str | None:
        self._check_up()
        self.lookups += 1
        return self.aliases.get((part, alias))

    def check_candidate(self, candidate: dict[str, str]) -> dict[str, str]:
        self._check_up()
        return dict.fromkeys(candidate, "run")

    def set_alias(self, part: str, alias: str, version: str) -> None:
        self.aliases[(part, alias)] = version

    def delete_alias(self, part: str, alias: str) -> None:
        self.aliases.pop((part, alias), None)

    def reachable(self) -> tuple[bool, str]:
        return True, "ok"

    def tag(self, part: str, version: str, key: str, value: str) -> None:
        pass


class Blind:
    """Metrics and exposure log stand-ins: never read while no rollout is judged here."""

    async def snapshot(self) -> Any:
        raise RuntimeError("no metrics in these tests")

    def start(self, rollout_id: str, since_ts: float) -> None:
        pass

    def stop(self, rollout_id: str) -> None:
        pass

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"

    def arm_units(self, rollout_id: str, arm: str) -> Any:
        raise AssertionError("not judged here")


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def declarations() -> GatewayDeclarations:
    return GatewayDeclarations.load(None, None)


class Parts:
    """A controller owning a book, over one SQLite file."""

    def __init__(self, path: Path, declarations: GatewayDeclarations) -> None:
        self.path, self.declarations = path, declarations
        self.registry, self.clock = Registry(), Clock()
        self.open()

    def open(self) -> None:
        """(Re)open the stores and build a controller: what a restart does."""
        rollouts = RolloutStore(self.path)
        self.book = ExperimentBook(
            ExperimentStore(self.path), rollouts, self.declarations, self.registry, self.clock
        )
        blind = Blind()
        self.controller = Controller(
            rollouts,
            self.registry,  # type: ignore[arg-type]
            blind,
            blind,
            30,
            self.clock,
            experiments=self.book,
        )

    def published(self) -> dict[str, Any]:
        return {a.experiment_id: a for a in self.controller.assignments().experiments}


@pytest.fixture
def parts(tmp_path: Path, declarations: GatewayDeclarations) -> Parts:
    return Parts(tmp_path / "state.sqlite", declarations)


def plan(name: str = "exp", *arms: dict[str, Any], **kw: Any) -> ExperimentPlan:
    arms = arms or (
        {"name": "control", "weight": 0.5},
        {"name": "diverse", "weight": 0.5, "variant": "diverse"},
    )
    return ExperimentPlan.model_validate({"name": name, "arms": list(arms), **kw})


def ranker_arms(alias: str = "challenger") -> tuple[dict[str, Any], dict[str, Any]]:
    return ({"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5, "models": {"ranker": alias}})


async def refused(parts: Parts, p: ExperimentPlan) -> Refusal:
    with pytest.raises(Refusal) as exc:
        await parts.book.create(p)
    return exc.value


# ---- the plan alone ------------------------------------------------------------------------
A, B = {"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"arms": [A, {**B, "weight": 0.4}]}, "weights sum to 0.9, not 1"),
        ({"arms": [A, {**B, "name": "a"}]}, "arm name 'a' is used twice"),
        ({"arms": [{**A, "weight": 1.0}]}, "at least 2"),
        ({"arms": [A, {**B, "variant": "diverse", "knobs": {"mmr": {"lambda": 0.1}}}]}, "not both"),
        (
            {"arms": [A, {**B, "models": {"rankr": "challenger"}}]},
            "models.rankr is not a model slot",
        ),
        ({"arms": [A, {**B, "weight": 0}]}, "arms.1.weight"),
        ({"arms": [A, B], "start_at": 2000, "stop_at": 1000}, "stop_at 1000.0 is not after"),
        ({"arms": [A, B], "metrics": {"primary": "revenue"}}, "metrics.primary"),
        ({"arms": [A, B], "metrics": {"guardrails": ["p50"]}}, "metrics.guardrails"),
        ({"arms": [A, B], "traffic": 0}, "traffic"),
        ({"arms": [A, B], "traffic": 1.5}, "traffic"),
        ({"arms": [A, B], "audience": "everyone"}, "audience"),
        ({"arms": [A, B], "colour": "blue"}, "colour"),
        ({"arms": [A, B], "name": "has space"}, "name"),
        ({"arms": [A, B], "layer": "x" * 65}, "layer"),
        (
            {
                "kind": "interleaving",
                "arms": [{**A, "weight": 0.3}, {**B, "weight": 0.4}, {"name": "c", "weight": 0.3}],
            },
            "exactly two arms",
        ),
        (
            {"kind": "interleaving", "arms": [{**A, "weight": 0.3}, {**B, "weight": 0.7}]},
            "weights must be 0.5/0.5",
        ),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field(body: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ExperimentPlan.model_validate({"name": "exp", **body})
    assert says in str(exc.value), str(exc.value)


def test_defaults() -> None:
    p = plan()
    assert (p.layer, p.kind, p.traffic, p.audience, p.sticky) == ("default", "ab", 1.0, "all", True)
    assert p.metrics.primary == "clicks_per_user" and p.segments == ()


# ---- the arms against the gateway's declarations -------------------------------------------
@pytest.mark.parametrize(
    ("arm", "says"),
    [
        ({"variant": "diversee"}, "arms[1].variant: no variant 'diversee'"),
        ({"knobs": {"mmrr": {"lambda": 0.5}}}, "arms[1].knobs.mmrr: no component 'mmrr'"),
        ({"knobs": {"mmr": {"lambda": 5.0}}}, "arms[1].knobs.mmr: Expected `float` <= 1"),
        ({"knobs": {"mmr": {"lambdaa": 0.5}}}, "arms[1].knobs.mmr"),
    ],
)
async def test_an_arm_the_gateway_cannot_run_is_refused(
    parts: Parts, arm: dict[str, Any], says: str
) -> None:
    r = await refused(parts, plan("exp", A, {**B, **arm}))
    assert r.status == 422 and says in r.reason, r.reason


@pytest.mark.parametrize(
    ("arms", "says"),
    [
        (
            (A, {**B, "models": {"ranker": "challenger"}, "knobs": {"mmr": {"lambda": 0.5}}}),
            "also differ in knobs",
        ),
        ((A, {**B, "variant": "canary"}), "also differ in models.retrieval"),
        ((A, {**B, "models": {"ranker": "production"}}), "both a and b rank with @production"),
    ],
)
async def test_interleaving_arms_differ_in_the_ranker_only(
    parts: Parts, arms: tuple[dict[str, Any], ...], says: str
) -> None:
    r = await refused(parts, plan("il", *arms, kind="interleaving"))
    assert r.status == 422 and says in r.reason, r.reason
    ok = await parts.book.create(plan("il-ok", *ranker_arms(), kind="interleaving"))
    assert ok.state == "running"


async def test_a_variant_arm_is_resolved_to_its_models_and_knobs(parts: Parts) -> None:
    e = await parts.book.create(plan("div", traffic=0.4, segments=["casual"], audience="new"))
    a = parts.published()["div"]
    assert [(arm.name, arm.weight, arm.models, arm.knobs) for arm in a.arms] == [
        ("control", 0.5, {}, {}),
        ("diverse", 0.5, {}, {"mmr": {"lambda": 0.5, "genre_cap": 3}}),
    ]
    assert (a.layer, a.salt, a.range, a.kind) == ("default", "div", (0.0, 0.4), "ab")
    assert (a.audience, a.segments, a.sticky) == ("new", ("casual",), True)
    assert e.state == "running" and parts.registry.lookups == 0, "no model: MLflow not asked"


# ---- the arms' models against MLflow -------------------------------------------------------
async def test_model_aliases_must_exist_for_every_part_of_the_slot(parts: Parts) -> None:
    r = await refused(parts, plan("x", *ranker_arms("nope")))
    assert r.status == 422 and "arms[1].models.ranker: cascade-ranker has no alias @nope" in (
        r.reason
    )
    parts.registry.aliases[("user_tower", "fresh")] = "3"  # the item index lacks it
    r = await refused(parts, plan("x", A, {**B, "models": {"retrieval": "fresh"}}))
    assert "cascade-item-index has no alias @fresh" in r.reason
    assert "cascade-user-tower" not in r.reason
    parts.registry.aliases[("item_index", "fresh")] = "3"
    assert (await parts.book.create(plan("x", A, {**B, "models": {"retrieval": "fresh"}}))).range


async def test_mlflow_unreachable_is_a_503_for_models_only(parts: Parts) -> None:
    parts.registry.up = False
    r = await refused(parts, plan("x", *ranker_arms()))
    assert r.status == 503 and r.reason.startswith("cannot check the arms' models")
    assert (await parts.book.create(plan("knobs-only"))).state == "running"


# ---- conflicts -----------------------------------------------------------------------------
ROLLOUT = Plan(
    model="ranker",
    candidate={"ranker": "2"},
    steps=(Step(kind="canary", share=0.1, duration_s=60),),
)


async def test_an_experiment_cannot_change_a_slot_being_rolled_out(parts: Parts) -> None:
    r = await parts.controller.start(ROLLOUT)
    refusal = await refused(parts, plan("x", *ranker_arms()))
    assert refusal.status == 409 and f"rolled out by rollout {r.id}" in refusal.reason
    assert (await parts.book.create(plan("knobs"))).state == "running", "other slots are free"
    await parts.controller.abort(r.id)
    assert (await parts.book.create(plan("x", *ranker_arms(), layer="l2"))).state == "running"


async def test_a_rollout_cannot_start_for_a_slot_an_experiment_changes(parts: Parts) -> None:
    await parts.book.create(plan("ranker-exp", *ranker_arms()))
    with pytest.raises(Refusal) as exc:
        await parts.controller.start(ROLLOUT)
    assert exc.value.status == 409 and "running experiment ranker-exp" in exc.value.reason
    assert parts.controller.store.all() == [] and ("ranker", "canary") not in (
        parts.registry.aliases
    )
    retrieval = Plan(model="retrieval", candidate={"user_tower": "2", "item_index": "2"})
    assert (await parts.controller.start(retrieval)).state == "running"
    await parts.book.stop("ranker-exp")
    assert (await parts.controller.start(ROLLOUT.model_copy())).state == "running"


async def test_layer_capacity_names_and_reuse_are_conflicts(parts: Parts) -> None:
    await parts.book.create(plan("a", traffic=0.7))
    r = await refused(parts, plan("b", traffic=0.4))
    assert r.status == 409 and "layer default: running experiments take 0.7 (a 0.7)" in r.reason
    explore = plan("b", A, {**B, "variant": "explore"}, traffic=0.4, layer="other")
    assert (await parts.book.create(explore)).range == (0.0, 0.4)
    again = await refused(parts, plan("a", traffic=0.1, layer="third"))
    assert again.status == 409 and "experiment a already exists (running)" in again.reason
    await parts.book.stop("a")
    reused = await refused(parts, plan("a", traffic=0.1))
    assert reused.status == 409 and "(stopped)" in reused.reason, "names are never reused"


async def test_two_layers_cannot_change_the_same_thing(parts: Parts) -> None:
    await parts.book.create(plan("a", traffic=0.2))  # knobs mmr.lambda, mmr.genre_cap
    mmr = {**B, "knobs": {"mmr": {"lambda": 0.1}}}
    r = await refused(parts, plan("b", A, mmr, layer="other", traffic=0.2))
    assert r.status == 409 and "knobs.mmr.lambda is changed by experiment a" in r.reason
    assert (await parts.book.create(plan("b", A, mmr, traffic=0.2))).range == (0.2, 0.4)


async def test_refusals_change_nothing(parts: Parts) -> None:
    version = parts.controller.assignments().version
    for bad in (
        plan("x", A, {**B, "variant": "nope"}),
        plan("x", *ranker_arms("nope")),
        plan("x", stop_at=parts.clock.t - 1),
    ):
        with pytest.raises(Refusal):
            await parts.book.create(bad)
    assert parts.book.all() == [] and parts.book.history("x") == []
    assert parts.controller.assignments().version == version


# ---- ranges --------------------------------------------------------------------------------
def test_first_fit_takes_the_first_gap_wide_enough() -> None:
    assert first_fit([], 0.3) == (0.0, 0.3)
    assert first_fit([(0.0, 0.3), (0.6, 1.0)], 0.3) == (0.3, 0.6)
    assert first_fit([(0.0, 0.1), (0.3, 0.4)], 0.2) == (0.1, 0.3)
    assert first_fit([(0.0, 0.1), (0.2, 0.4)], 0.2) == (0.4, 0.6)
    assert first_fit([(0.1, 1.0)], 0.2) is None
    # 0.1 + 0.2 is 0.30000000000000004: an exact fit is still a fit, ending at the gap's edge
    assert first_fit([(0.0, 0.1 + 0.2), (0.6, 1.0)], 0.3) == (0.1 + 0.2, 0.6)
    assert free_gaps([(0.2, 0.5), (0.0, 0.1)]) == [(0.1, 0.2), (0.5, 1.0)]


async def test_ranges_are_first_fit_and_stopping_frees_them(parts: Parts) -> None:
    for name, share in (("a", 0.3), ("b", 0.3), ("c", 0.4)):
        await parts.book.create(plan(name, traffic=share))
    assert {n: a.range for n, a in parts.published().items()} == {
        "a": (0.0, 0.3),
        "b": (0.3, 0.6),
        "c": (0.6, 1.0),
    }
    await parts.book.stop("b", "enough")
    assert "b" not in parts.published()
    assert (await parts.book.create(plan("d", traffic=0.2))).range == (0.3, 0.5)
    await parts.book.stop("a")
    r = await refused(parts, plan("e", traffic=0.35))  # 0.4 free, as 0.3 and 0.1
    assert r.status == 409 and "0.4 is free, but in pieces ([0, 0.3), [0.5, 0.6))" in r.reason
    assert (await parts.book.create(plan("e", traffic=0.3))).range == (0.0, 0.3)
    assert parts.published()["c"].range == (0.6, 1.0), "a running experiment never moves"


async def test_changing_weights_keeps_the_range_and_the_users_arms(parts: Parts) -> None:
    await parts.book.create(plan("w", traffic=0.5))
    before = parts.controller.assignments()
    a = before.experiments[0]
    users = [f"u{i}" for i in range(400)]
    arms = {u: a.arm(u).name for u in users}
    e = await parts.book.set_weights("w", {"control": 0.1, "diverse": 0.9})
    after = parts.controller.assignments()
    b = after.experiments[0]
    assert after.version > before.version and (b.range, b.salt) == (a.range, a.salt)
    assert [arm.weight for arm in b.arms] == [0.1, 0.9] and e.plan.arms[0].weight == 0.1
    assert b.arms[1].knobs == a.arms[1].knobs, "the resolved variant stays"
    # sticky: the arm the gateway remembered wins over the new weights
    assert all(b.arm(u, remembered=arms[u]).name == arms[u] for u in users)
    moved = sum(b.arm(u).name != arms[u] for u in users)
    assert 0 < moved < 400, "new users follow the new weights"
    history = parts.book.history("w")
    assert [d.decision for d in history] == ["created", "started", "weights_changed"]
    assert history[-1].details == {
        "before": {"control": 0.5, "diverse": 0.5},
        "after": {"control": 0.1, "diverse": 0.9},
    }


@pytest.mark.parametrize(
    ("weights", "says"),
    [
        ({"control": 0.5}, "name every arm of w exactly once"),
        ({"control": 0.5, "diverse": 0.4}, "weights: weights sum to 0.9"),
        ({"control": 0.0, "diverse": 1.0}, "outside (0, 1]"),
        ({"control": 0.5, "other": 0.5}, "name every arm"),
    ],
)
async def test_bad_weights_are_refused(parts: Parts, weights: dict[str, float], says: str) -> None:
    await parts.book.create(plan("w"))
    with pytest.raises(Refusal) as exc:
        await parts.book.set_weights("w", weights)
    assert exc.value.status == 422 and says in exc.value.reason, exc.value.reason
    assert [arm.weight for arm in parts.published()["w"].arms] == [0.5, 0.5]


async def test_weights_of_interleaving_unknown_and_stopped_experiments(parts: Parts) -> None:
    await parts.book.create(plan("il", *ranker_arms(), kind="interleaving"))
    with pytest.raises(Refusal) as il:
        await parts.book.set_weights("il", {"a": 0.3, "b": 0.7})
    assert il.value.status == 422 and "fixed at 0.5/0.5" in il.value.reason
    with pytest.raises(Refusal) as unknown:
        await parts.book.set_weights("nope", {"a": 1.0})
    assert unknown.value.status == 404
    await parts.book.stop("il")
    with pytest.raises(Refusal) as ended:
        await parts.book.stop("il")
    assert ended.value.status == 409 and "has ended (stopped)" in ended.value.reason


# ---- time, restarts, the declared file -----------------------------------------------------
async def test_scheduled_start_and_stop_on_the_tick(parts: Parts) -> None:
    now = parts.clock.t
    e = await parts.book.create(plan("later", start_at=now + 10, stop_at=now + 20))
    assert e.state == "scheduled" and e.range is None and parts.published() == {}
    await parts.controller.tick()
    assert parts.published() == {}
    parts.clock.t += 10
    await parts.controller.tick()
    assert parts.published()["later"].range == (0.0, 1.0)
    parts.clock.t += 10
    await parts.controller.tick()
    assert parts.published() == {}
    got = parts.book.get("later")
    assert got is not None and got.state == "stopped" and got.stop_reason == "its stop_at passed"
    assert [d.decision for d in parts.book.history("later")] == ["created", "started", "stopped"]


async def test_a_due_experiment_waits_for_room_then_starts(parts: Parts) -> None:
    await parts.book.create(plan("big", traffic=0.8))
    await parts.book.create(plan("next", traffic=0.5, start_at=parts.clock.t + 1))
    parts.clock.t += 1
    await parts.controller.tick()
    waiting = parts.book.get("next")
    assert waiting is not None and waiting.state == "scheduled"
    assert "running experiments take 0.8 (big 0.8)" in waiting.waiting
    await parts.book.stop("big")
    await parts.controller.tick()
    assert parts.published()["next"].range == (0.0, 0.5)


async def test_a_restarted_controller_keeps_its_experiments(parts: Parts) -> None:
    await parts.book.create(plan("a", traffic=0.3))
    await parts.book.create(plan("b", *ranker_arms(), traffic=0.5, layer="ranking"))
    await parts.book.create(plan("c", traffic=0.3))
    await parts.book.stop("a")
    published = parts.controller.assignments()
    parts.clock.t += 5
    parts.open()  # a new process on the same file, a moment later
    await parts.controller.resume_after_restart()
    again = parts.controller.assignments()
    assert again.experiments == published.experiments and again.version > published.version
    with pytest.raises(Refusal):  # and the restarted one still knows who holds the ranker
        await parts.controller.start(ROLLOUT)
    assert (await parts.book.create(plan("d", traffic=0.3))).range == (0.0, 0.3)


def test_the_example_file_declares_one_running_ab(declarations: GatewayDeclarations) -> None:
    plans = load_declared(REPO / "config" / "experiments.example.yaml")
    assert [(p.name, p.kind) for p in plans] == [("diversity-mmr", "ab")]
    assert declarations.resolve(plans[0])[1].knobs == {"mmr": {"lambda": 0.5, "genre_cap": 3}}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("experiments: [{name: x, arms: [{name: a, weight: 1}]}]", "experiments[0].arms"),
        ("experiments: {name: x}", "must be a list"),
        ("experiments: [", "not YAML"),
    ],
)
def test_a_bad_declared_file_stops_the_start(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "experiments.yaml"
    path.write_text(text)
    with pytest.raises(StartupError) as exc:
        load_declared(path)
    assert says in str(exc.value)
    with pytest.raises(StartupError):
        load_declared(tmp_path / "missing.yaml")


async def test_declared_experiments_are_created_once_by_name(parts: Parts) -> None:
    declared = [plan("file-a", traffic=0.5), plan("file-b", *ranker_arms("gone"), layer="r")]
    parts.book.declare(declared)
    await parts.controller.tick()
    assert set(parts.published()) == {"file-a"}, "file-b names an alias MLflow lacks"
    await parts.book.stop("file-a")
    parts.open()
    parts.book.declare(declared)
    await parts.controller.tick()
    stopped = parts.book.get("file-a")
    assert stopped is not None and stopped.state == "stopped", "already there: not re-created"
    assert [d.decision for d in parts.book.history("file-a")] == ["created", "started", "stopped"]


async def test_a_declared_experiment_refused_for_a_conflict_is_tried_again(parts: Parts) -> None:
    await parts.book.create(plan("holder", traffic=0.9))
    parts.book.declare([plan("declared", traffic=0.5)])
    await parts.controller.tick()
    assert parts.book.get("declared") is None
    await parts.book.stop("holder")
    await parts.controller.tick()
    assert parts.published()["declared"].range == (0.0, 0.5)


def test_cli_weights() -> None:
    assert parse_weights("a=0.3, b=0.7") == {"a": 0.3, "b": 0.7}
    for bad in ("a", "a=x", "=0.5"):
        with pytest.raises(SystemExit):
            parse_weights(bad)
