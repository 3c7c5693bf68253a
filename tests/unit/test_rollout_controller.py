"""The controller's state machine with a real SQLite store and stand-ins for MLflow, the metrics
and the exposure log (the real ones: tests/integration/test_rollouts_and_experiments.py).

Covered: refusals that change nothing, warming until every process holds the candidate,
steps and promotion, rollback that takes traffic off first, holds while an input is blind,
inconclusive steps that extend then hold, and a restart that resumes from the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.rollouts import controller as controller_module
from services.rollouts.analysis import Verdict
from services.rollouts.controller import Controller, Refusal
from services.rollouts.plan import Plan, Step
from services.rollouts.registry_ops import CandidateRefused
from services.rollouts.store import RolloutStore
from shared.models.registry import RegistryUnavailableError
from tests.utils.rollout_series import Process


class Registry:
    """Aliases per part, in memory; versions 1-9 exist, 9 fails the serving checks."""

    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], str] = {
            ("ranker", "production"): "1", ("user_tower", "production"): "1",
            ("item_index", "production"): "1",
        }  # fmt: skip
        self.up = True
        self.tags: dict[tuple[str, str, str], str] = {}

    def _check_up(self) -> None:
        if not self.up:
            raise RegistryUnavailableError("MLflow unreachable (test)")

    def reachable(self) -> tuple[bool, str]:
        return (True, "ok") if self.up else (False, "MLflow unreachable (test)")

    def check_candidate(self, candidate: dict[str, str]) -> dict[str, str]:
        self._check_up()
        for part, version in candidate.items():
            if int(version) > 9:
                raise CandidateRefused(f"cascade-{part} version {version} does not exist")
            if version == "9":
                raise CandidateRefused("candidate fails the serving checks: missing input")
        return dict.fromkeys(candidate, "run")

    def alias_version(self, part: str, alias: str) -> str | None:
        self._check_up()
        return self.aliases.get((part, alias))

    def set_alias(self, part: str, alias: str, version: str) -> None:
        self._check_up()
        self.aliases[(part, alias)] = version

    def delete_alias(self, part: str, alias: str) -> None:
        self._check_up()
        self.aliases.pop((part, alias), None)

    def tag(self, part: str, version: str, key: str, value: str) -> None:
        self._check_up()
        self.tags[(part, version, key)] = value


class Metrics:
    """A gateway and a ranking process; ``load()`` makes ranking hold what its aliases say."""

    def __init__(self, registry: Registry) -> None:
        self.proc = Process()
        self.registry = registry
        self.up = True
        self.proc.hold("ranking", "ranker", "production", "cascade-ranker/1 (@production)")

    def load(self) -> None:
        """Ranking follows the registry's aliases (what ModelSet's poll does)."""
        self.proc.models.clear()
        for (part, alias), version in self.registry.aliases.items():
            if part == "ranker":
                self.proc.hold("ranking", "ranker", alias, f"cascade-ranker/{version} (@{alias})")

    async def snapshot(self) -> Any:
        if not self.up:
            from services.rollouts.metrics_source import MetricsUnavailable

            raise MetricsUnavailable("gateway", "connection refused")
        return self.proc.snapshot()


class Exposure:
    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ok = True

    def start(self, rollout_id: str, since_ts: float) -> None:
        self.started[rollout_id] = since_ts

    def stop(self, rollout_id: str) -> None:
        self.started.pop(rollout_id, None)

    def healthy(self) -> tuple[bool, str]:
        return (True, "ok") if self.ok else (False, "broker unreachable")

    def arm_units(self, rollout_id: str, arm: str) -> Any:
        raise AssertionError("the verdicts are scripted in these tests")


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Verdicts:
    """Scripted verdicts: what ``judge`` returns next (continue when none is queued)."""

    def __init__(self) -> None:
        self.queue: list[str] = []
        self.seen: list[tuple[str, str]] = []

    def __call__(self, rollout_id: str, step: Step, analysis: Any, look: Any) -> Verdict:
        self.seen.append((step.kind, f"{step.share}"))
        outcome = self.queue.pop(0) if self.queue else "continue"
        return Verdict(outcome, [f"scripted {outcome}"], {"scripted": 1})  # type: ignore[arg-type]


PLAN = Plan(
    model="ranker", candidate={"ranker": "2"},
    steps=(Step(kind="shadow", share=0.2, duration_s=10, min_sample=5),
           Step(kind="canary", share=0.05, duration_s=10, min_sample=5),
           Step(kind="canary", share=0.25, duration_s=10, min_sample=5)),
)  # fmt: skip


@pytest.fixture
def verdicts(monkeypatch: pytest.MonkeyPatch) -> Verdicts:
    v = Verdicts()
    monkeypatch.setattr(controller_module, "judge", v)
    return v


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Controller, Registry, Metrics, Exposure, Clock]:
    registry, clock, exposure = Registry(), Clock(), Exposure()
    metrics = Metrics(registry)
    store = RolloutStore(tmp_path / "state.sqlite")
    return (
        Controller(store, registry, metrics, exposure, 30, clock),
        registry,
        metrics,
        exposure,
        clock,
    )  # type: ignore[arg-type]


def shares(c: Controller) -> list[tuple[str, float, float]]:
    return [(a.rollout_id, a.canary_share, a.shadow_share) for a in c.assignments().rollouts]


async def test_a_rollout_runs_its_steps_and_promotes(parts: Any, verdicts: Verdicts) -> None:
    c, registry, metrics, exposure, clock = parts
    r = await c.start(PLAN)
    assert registry.aliases[("ranker", "shadow")] == "2" and r.phase == "warming"
    await c.tick()
    assert shares(c) == [], "no traffic before every process holds the candidate"
    metrics.load()
    await c.tick()
    assert shares(c) == [(r.id, 0.0, 0.2)] and r.id in exposure.started
    verdicts.queue = ["pass"]
    await c.tick()  # shadow passes: canary alias set, shadow removed, warming again
    assert ("ranker", "shadow") not in registry.aliases
    assert registry.aliases[("ranker", "canary")] == "2" and shares(c) == []
    metrics.load()
    await c.tick()
    assert shares(c) == [(r.id, 0.05, 0.0)]
    verdicts.queue = ["pass"]
    await c.tick()  # 5% -> 25%: same alias, no warming
    assert shares(c) == [(r.id, 0.25, 0.0)]
    verdicts.queue = ["pass"]
    await c.tick()  # last step passed: production moves, canary users keep the candidate
    assert registry.aliases[("ranker", "production")] == "2"
    assert shares(c) == []
    metrics.load()
    await c.tick()
    done = c.store.get(r.id)
    assert done is not None and done.state == "promoted" and done.phase == "done"
    assert ("ranker", "canary") not in registry.aliases
    decisions = [d.decision for d in c.store.history(r.id)]
    assert decisions == ["start", "warm", "pass", "warm", "pass", "pass", "promote", "promoted"]
    assert registry.tags[("ranker", "2", f"{r.id}.state")] == "promoted"


async def test_a_failing_step_takes_traffic_off_then_removes_aliases(
    parts: Any, verdicts: Verdicts
) -> None:
    c, registry, metrics, _, _ = parts
    r = await c.start(PLAN)
    metrics.load()
    await c.tick()
    verdicts.queue = ["pass"]
    await c.tick()
    metrics.load()
    await c.tick()
    assert shares(c) == [(r.id, 0.05, 0.0)]
    verdicts.queue = ["fail"]
    await c.tick()
    assert shares(c) == []
    assert ("ranker", "canary") not in registry.aliases
    assert registry.aliases[("ranker", "production")] == "1"
    got = c.store.get(r.id)
    assert got is not None and got.state == "rolled_back"
    assert [d.decision for d in c.store.history(r.id)][-2:] == ["fail", "rollback"]


async def test_srm_halts(parts: Any, verdicts: Verdicts) -> None:
    c, _, metrics, _, _ = parts
    r = await c.start(PLAN)
    metrics.load()
    await c.tick()
    verdicts.queue = ["halt"]
    await c.tick()
    got = c.store.get(r.id)
    assert got is not None and got.state == "halted" and shares(c) == []


async def test_refusals_change_nothing(parts: Any) -> None:
    c, registry, _, _, _ = parts
    before = dict(registry.aliases)
    with pytest.raises(Refusal) as missing:
        await c.start(PLAN.model_copy(update={"candidate": {"ranker": "99"}}))
    assert missing.value.status == 422 and "does not exist" in missing.value.reason
    with pytest.raises(Refusal) as schema:
        await c.start(PLAN.model_copy(update={"candidate": {"ranker": "9"}}))
    assert schema.value.status == 422 and "serving checks" in schema.value.reason
    registry.up = False
    with pytest.raises(Refusal) as down:
        await c.start(PLAN)
    assert down.value.status == 503
    registry.up = True
    assert registry.aliases == before and c.store.all() == []
    first = await c.start(PLAN)
    with pytest.raises(Refusal) as second:
        await c.start(PLAN.model_copy(update={"candidate": {"ranker": "3"}}))
    assert second.value.status == 409 and first.id in second.value.reason
    bundle = Plan(model="bundle", candidate={"ranker": "3", "user_tower": "3", "item_index": "3"})
    with pytest.raises(Refusal):  # a bundle holds the ranker too
        await c.start(bundle)


async def test_blind_inputs_hold_without_deciding(parts: Any, verdicts: Verdicts) -> None:
    c, registry, metrics, exposure, _ = parts
    r = await c.start(PLAN)
    metrics.load()
    await c.tick()
    verdicts.queue = ["fail"]
    for blind in ("metrics", "registry", "exposure"):
        metrics.up, registry.up, exposure.ok = (
            blind != "metrics",
            blind != "registry",
            (blind != "exposure"),
        )
        await c.tick()
        got = c.store.get(r.id)
        assert got is not None and got.state == "running", blind
        assert blind.split("_")[0][:6] in got.hold_reason.lower(), got.hold_reason
    assert verdicts.queue == ["fail"], "nothing was judged while blind"
    metrics.up, registry.up, exposure.ok = True, True, True
    await c.tick()
    got = c.store.get(r.id)
    assert got is not None and got.hold_reason == "" and got.state == "rolled_back"


async def test_inconclusive_extends_then_holds_then_resumes(parts: Any, verdicts: Verdicts) -> None:
    c, _, metrics, _, _ = parts
    plan = PLAN.model_copy(update={"steps": (
        Step(kind="canary", share=0.05, duration_s=10, max_extensions=1),
        Step(kind="canary", share=0.5, duration_s=10),
    )})  # fmt: skip
    r = await c.start(plan)
    metrics.load()
    await c.tick()
    verdicts.queue = ["inconclusive", "inconclusive"]
    await c.tick()
    got = c.store.get(r.id)
    assert got is not None and got.extensions == 1 and got.state == "running"
    await c.tick()
    got = c.store.get(r.id)
    assert got is not None and got.state == "holding"
    assert shares(c) == [(r.id, 0.05, 0.0)], "a hold keeps the split where it is"
    resumed = await c.resume(r.id, "looked at the figures")
    assert resumed.step == 1 and shares(c) == [(r.id, 0.5, 0.0)]
    with pytest.raises(Refusal) as again:
        await c.resume(r.id)
    assert again.value.status == 409


async def test_abort_and_manual_promote(parts: Any, verdicts: Verdicts) -> None:
    c, registry, metrics, _, _ = parts
    r = await c.start(PLAN)
    metrics.load()
    await c.tick()
    aborted = await c.abort(r.id, "changed my mind")
    assert aborted.state == "aborted" and shares(c) == []
    assert ("ranker", "shadow") not in registry.aliases
    with pytest.raises(Refusal) as ended:
        await c.abort(r.id)
    assert ended.value.status == 409
    with pytest.raises(Refusal) as unknown:
        await c.promote("nope")
    assert unknown.value.status == 404
    r2 = await c.start(PLAN)
    await c.promote(r2.id, "urgent fix")
    assert registry.aliases[("ranker", "production")] == "2"


async def test_a_restarted_controller_resumes_from_its_store(
    parts: Any, verdicts: Verdicts, tmp_path: Path
) -> None:
    c, registry, metrics, _, clock = parts
    r = await c.start(PLAN)
    metrics.load()
    await c.tick()
    verdicts.queue = ["pass"]
    await c.tick()
    metrics.load()
    await c.tick()
    step_started = c.store.get(r.id).step_started  # type: ignore[union-attr]
    # the controller dies; a new one opens the same file
    exposure = Exposure()
    again = Controller(RolloutStore(tmp_path / "state.sqlite"), registry, metrics, exposure, 30,
                       clock)  # type: ignore[arg-type]  # fmt: skip
    await again.resume_after_restart()
    assert exposure.started == {r.id: step_started}
    assert shares(again) == [(r.id, 0.05, 0.0)]
    verdicts.queue = ["pass", "pass"]
    await again.tick()
    await again.tick()
    metrics.load()
    await again.tick()
    got = again.store.get(r.id)
    assert got is not None and got.state == "promoted"


async def test_a_candidate_that_never_loads_fails_the_step(parts: Any, verdicts: Verdicts) -> None:
    c, registry, _, _, clock = parts
    r = await c.start(PLAN)
    await c.tick()
    clock.t += 31  # past warm_timeout_s, still not held by ranking
    await c.tick()
    got = c.store.get(r.id)
    assert got is not None and got.state == "rolled_back"
    assert "ranking (ranker)" in c.store.history(r.id)[-1].reasons[0]
    assert ("ranker", "shadow") not in registry.aliases


def test_store_round_trips_plans_and_figures(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "s.sqlite")
    from services.rollouts.store import DecisionRecord, Rollout

    r = Rollout("x", PLAN, baseline={"counters": [["a_total", {"arm": "canary"}, 3.0]]})
    store.save(r, DecisionRecord("x", 1.0, 0, "start", ["why"], {"p": np.float64(0.5)}))
    got = store.get("x")
    assert got is not None and got.plan == PLAN and got.baseline == r.baseline
    assert store.history("x")[0].figures == {"p": 0.5}
