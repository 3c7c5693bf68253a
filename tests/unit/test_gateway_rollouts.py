"""The gateway's side of rollouts in-process: the sticky split, the canary's production re-run,
the shadow (bounded, compared, never served) and the follower of the controller's assignments
(over real HTTP)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec
import numpy as np
import pytest
import uvicorn
from prometheus_client import REGISTRY

from deploy.local.processes import free_port
from services.gateway.pipeline import PIPELINE
from services.gateway.request_state import RequestState
from services.gateway.rollouts import metrics
from services.gateway.rollouts.assignment import Assignment, Assignments, unit_interval
from services.gateway.rollouts.canary import slot_failure
from services.gateway.rollouts.follower import AssignmentFollower
from services.gateway.rollouts.gateway_rollouts import GatewayRollouts
from services.gateway.rollouts.shadow import ShadowRunner, compare
from services.gateway.rollouts.split import decide
from services.gateway.runner import Runner
from shared.pipeline.context import VariantSpec
from shared.platform.http_client import ServiceClient
from tests.integration.serving_fixtures import load_models, write_synthetic_bundle
from tests.unit.test_gateway_runner import BUDGET, ITEMS, NOW, build
from tests.unit.test_gateway_runner import store as store  # noqa: F401 - the fixture

USERS = [f"user-{i}" for i in range(20_000)]


def binomial_bound(n: int, p: float, z: float = 4.5) -> float:
    """Half-width of a share's z-sigma band (4.5 sigma: a false alarm about once in 10^5)."""
    return z * math.sqrt(p * (1 - p) / n)


def canary(share: float, rollout_id: str = "r1", slots: tuple[Any, ...] = ("ranker",),
           shadow: float = 0.0) -> Assignment:  # fmt: skip
    return Assignment(rollout_id, slots, rollout_id, share, shadow)


# ---- the split -------------------------------------------------------------------------
def test_users_keep_their_arm_as_the_canary_grows() -> None:
    arms = {}
    for share in (0.05, 0.25, 0.5):
        a = canary(share)
        arms[share] = {u for u in USERS if a.arm(u) == "canary"}
        observed = len(arms[share]) / len(USERS)
        assert abs(observed - share) < binomial_bound(len(USERS), share), (share, observed)
    assert arms[0.05] <= arms[0.25] <= arms[0.5]  # the first 5% stay in at 25% and 50%
    # and a user's arm never changes between requests
    a = canary(0.25)
    assert all(a.arm(u) == a.arm(u) for u in USERS[:100])


def test_two_rollouts_split_independently() -> None:
    a, b = canary(0.5, "ra"), canary(0.5, "rb")
    both = sum(a.arm(u) == "canary" and b.arm(u) == "canary" for u in USERS) / len(USERS)
    assert abs(both - 0.25) < binomial_bound(len(USERS), 0.25)


def test_unit_interval_is_uniform() -> None:
    draws = np.array([unit_interval("salt", u) for u in USERS])
    counts, _ = np.histogram(draws, bins=10, range=(0, 1))
    expected = len(USERS) / 10
    assert np.all(np.abs(counts - expected) < 4.5 * math.sqrt(expected))


def test_decide_builds_canary_and_shadow_variants() -> None:
    base = VariantSpec()
    assert decide(Assignments(), "u", "r", base).variant is base
    ranker = canary(0.3, "ranker-7", ("ranker",), shadow=0.0)
    retrieval = Assignment("retr-3", ("retrieval",), "retr-3", 0.0, 0.5)
    assignments = Assignments((ranker, retrieval), 3)
    in_canary = next(u for u in USERS if ranker.arm(u) == "canary")
    out_canary = next(u for u in USERS if ranker.arm(u) == "production")
    d = decide(assignments, in_canary, "req-1", base)
    assert d.arms == {"ranker-7": "canary", "retr-3": "production"}
    assert d.variant.alias("ranker") == "canary" and d.variant.alias("retrieval") == "production"
    assert d.canary_slots == ("ranker",)
    shadowed = [decide(assignments, out_canary, f"req-{i}", base) for i in range(2000)]
    drawn = [s for s in shadowed if s.shadow is not None]
    assert abs(len(drawn) / 2000 - 0.5) < binomial_bound(2000, 0.5)
    assert all(s.shadow.alias("retrieval") == "shadow" for s in drawn if s.shadow)
    assert all(s.variant.alias("ranker") == "production" for s in shadowed)


# ---- canary re-run, shadow ---------------------------------------------------------------
@pytest.fixture(scope="module")
def models_with_candidate(tmp_path_factory: pytest.TempPathFactory) -> Any:
    prod = write_synthetic_bundle(tmp_path_factory.mktemp("prod"), ITEMS, "prod-1", seed=0)
    cand = write_synthetic_bundle(tmp_path_factory.mktemp("cand"), ITEMS, "cand-1", seed=5)
    models = load_models(prod, alias_dirs={"canary": str(cand), "shadow": str(cand)})
    assert models.load_now("canary") and models.load_now("shadow"), models.error
    return models


def rollouts_for(runner: Runner, max_in_flight: int = 4, rank_only: bool = True) -> GatewayRollouts:
    shadow_steps = [s for s in PIPELINE if getattr(s, "name", "") != "user_features"]
    ranking_on = [s for s in shadow_steps if getattr(s, "name", "") in ("ranking", "reranking")]
    shadow = ShadowRunner(Runner(shadow_steps, runner.deps, BUDGET, "test_shadow"), max_in_flight,
                          Runner(ranking_on, runner.deps, BUDGET, "test_shadow") if rank_only
                          else None)  # fmt: skip
    return GatewayRollouts(AssignmentFollower(None), shadow)


def stage_errors(service: str) -> float:
    """Every step failure counted for ``service`` so far."""
    return sum(
        m.value for family in REGISTRY.collect() if family.name == "cascade_stage_errors"
        for m in family.samples if m.labels.get("service") == service
        and m.name.endswith("_total")
    )  # fmt: skip


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_failing_canary_is_answered_by_production(
    store: Any, models_with_candidate: Any
) -> None:
    runner, clients = build(store, models_with_candidate)
    gw = rollouts_for(runner)
    gw.follower.apply(Assignments((canary(0.999999, "fail-test"),), 1))
    d = gw.decide("u1", "req-a", VariantSpec())
    assert d.arms == {"fail-test": "canary"}
    clients["ranking"].fail = True  # the canary's ranking stage is down

    async def run(r: RequestState) -> None:
        if r.variant.alias("ranker") == "production":
            clients["ranking"].fail = False  # production's ranking answers
            await asyncio.sleep(0.3)  # a slow re-run: not the canary's time
        await runner.run(r)

    errors = {"rollout": "fail-test", "arm": "canary", "outcome": "model_error"}
    before = sample("cascade_rollout_requests_total", errors)
    answer = await gw.serve(RequestState("req-a", "u1", 10, NOW, d.variant), d, run, VariantSpec())
    assert answer.canary_failure is not None and answer.canary_failure.startswith("ranking:")
    assert answer.run.degraded == []  # production answered in full: not degraded
    assert answer.variant.alias("ranker") == "production"
    assert answer.models["ranker"].endswith("(@production)")
    assert answer.rerun_s >= 0.3
    latency = {"rollout": "fail-test", "arm": "canary"}
    sum_before = sample("cascade_rollout_request_duration_seconds_sum", latency)
    gw.after(answer, d, answer.rerun_s + 0.01)  # the whole request: the canary's try + re-run
    after = sample("cascade_rollout_requests_total", errors)
    assert after == before + 1
    observed = sample("cascade_rollout_request_duration_seconds_sum", latency) - sum_before
    assert observed == pytest.approx(0.01)  # timed as production's failures are: to the failure


async def test_a_working_canary_serves_the_candidate(
    store: Any, models_with_candidate: Any
) -> None:
    runner, _ = build(store, models_with_candidate)
    gw = rollouts_for(runner)
    gw.follower.apply(Assignments((canary(0.999999, "ok-test"),), 1))
    d = gw.decide("u1", "req-b", VariantSpec())
    answer = await gw.serve(RequestState("req-b", "u1", 10, NOW, d.variant), d, runner.run,
                            VariantSpec())  # fmt: skip
    assert answer.canary_failure is None and answer.run.degraded == []
    assert answer.models["ranker"].endswith("(@canary)")


@pytest.mark.parametrize("rank_only", [True, False], ids=["from_ranking", "whole_pipeline"])
async def test_shadow_is_compared_and_never_changes_the_answer(
    store: Any, models_with_candidate: Any, rank_only: bool
) -> None:
    runner, clients = build(store, models_with_candidate)
    gw = rollouts_for(runner, rank_only=rank_only)
    gw.follower.apply(Assignments((canary(0.0, "shadow-test", ("ranker",), shadow=0.999999),), 1))
    d = gw.decide("u1", "req-c", VariantSpec())
    assert d.shadow is not None and d.arms == {"shadow-test": "production"}
    prod = await gw.serve(RequestState("req-c", "u1", 10, NOW, d.variant), d, runner.run,
                          VariantSpec())  # fmt: skip
    served_before = list(prod.served.ids) if prod.served else []
    scores_before = prod.frame["score"].copy()
    labels = {"rollout": "shadow-test", "outcome": "compared"}
    compared = sample("cascade_shadow_requests_total", labels)
    shadow_errors = stage_errors("test_shadow")
    if rank_only:  # a ranker's shadow starts from production's candidates: it calls neither
        clients["candidates"].fail = clients["filtering"].fail = True
    gw.after(prod, d, 0.01)
    assert gw.shadow is not None
    await gw.shadow.drain()
    assert sample("cascade_shadow_requests_total", labels) == compared + 1
    assert stage_errors("test_shadow") == shadow_errors
    assert (prod.served.ids if prod.served else []) == served_before  # the answer is untouched
    assert np.array_equal(prod.frame["score"], scores_before)
    assert prod.models["ranker"].endswith("(@production)")
    count = sample("cascade_shadow_agreement_count",
                   {"rollout": "shadow-test", "stage": "final", "measure": "rbo"})  # fmt: skip
    assert count >= 1


async def test_shadow_of_an_identical_model_agrees_fully(store: Any, tmp_path: Any) -> None:
    bundle = write_synthetic_bundle(tmp_path / "same", ITEMS, "same-1", seed=0)
    models = load_models(bundle, alias_dirs={"shadow": str(bundle)})
    assert models.load_now("shadow")
    runner, _ = build(store, models)
    prod = await runner.run(RequestState("req-d", "u1", 10, NOW, VariantSpec()))
    shadow_variant = VariantSpec(name="s", models={"ranker": "shadow", "retrieval": "shadow"})
    twin = await runner.run(RequestState("req-d", "u1", 10, NOW, shadow_variant))
    figures = compare(prod, twin)
    for stage in ("ranked", "final"):
        assert figures[stage]["overlap_at_k"] == 1.0
        assert figures[stage]["rbo"] == pytest.approx(1.0)
        assert figures[stage]["kendall_tau"] == pytest.approx(1.0)
    assert figures["candidates"]["recall"] == 1.0


async def test_shadows_beyond_the_limit_are_dropped_and_counted(
    store: Any, models_with_candidate: Any
) -> None:
    runner, _ = build(store, models_with_candidate)
    gw = rollouts_for(runner, max_in_flight=1)
    gw.follower.apply(Assignments((canary(0.0, "drop-test", ("ranker",), shadow=0.999999),), 1))
    labels = {"rollout": "drop-test", "outcome": "dropped"}
    dropped = sample("cascade_shadow_requests_total", labels)
    prods = []
    for i in range(3):
        d = gw.decide("u1", f"req-e{i}", VariantSpec())
        prods.append((await gw.serve(RequestState(f"req-e{i}", "u1", 10, NOW, d.variant), d,
                                     runner.run, VariantSpec()), d))  # fmt: skip
    assert gw.shadow is not None
    started = [gw.shadow.submit(p, d) for p, d in prods]  # all at once: one slot
    assert started == [True, False, False]
    assert sample("cascade_shadow_requests_total", labels) == dropped + 2
    await gw.shadow.drain()


def test_slot_failure_blames_only_the_candidate_steps() -> None:
    r = RequestState("x", "u", 10, NOW, VariantSpec())
    from services.gateway.request_run import RequestRun

    r.run = RequestRun(BUDGET)
    r.run.degrade("filtering", "timeout after 300 ms", "filters run here")
    assert slot_failure(r, ("ranker",)) is None
    assert slot_failure(r, ("retrieval",)) is None
    r.run.degrade("ranking", "status: 503", "retrieval order")
    assert slot_failure(r, ("ranker",)) == "ranking: status: 503; fallback: retrieval order"
    assert slot_failure(r, ("retrieval",)) is None

    class Status:
        error = "RuntimeError: onnx"

    r.sources = {"two_tower": Status()}
    assert "two_tower" in (slot_failure(r, ("retrieval",)) or "")


# ---- the follower, over HTTP ---------------------------------------------------------------
class AssignmentsApp:
    """A stand-in controller: answers whatever ``body`` holds."""

    def __init__(self) -> None:
        self.body = msgspec.json.encode(Assignments())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": self.body})


async def test_follower_polls_applies_and_goes_stale() -> None:
    app = AssignmentsApp()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    client = ServiceClient("rollouts", f"http://127.0.0.1:{port}")
    follower = AssignmentFollower(client, poll_s=0.05, stale_after_s=0.3)
    try:
        await follower.poll_once()
        assert follower.current().rollouts == ()
        app.body = msgspec.json.encode(Assignments((canary(0.1, "poll-test"),), 7))
        await follower.poll_once()
        assert [a.rollout_id for a in follower.current().rollouts] == ["poll-test"]
        assert (await follower.check())[0]
        assert REGISTRY.get_sample_value("cascade_rollout_assignments_version") == 7
        app.body = b'{"rollouts": "nonsense"}'  # a broken answer keeps what was held
        await follower.poll_once()
        assert [a.rollout_id for a in follower.current().rollouts] == ["poll-test"]
        ok, why = await follower.check()
        assert not ok and "controller" in why
        await asyncio.sleep(0.4)  # no good answer for longer than stale_after_s
        assert follower.current().rollouts == ()  # production only
    finally:
        server.should_exit = True
        await task
        await client.aclose()
    # a dead controller: the poll fails, the gateway keeps serving
    await follower.poll_once()
    assert follower.current().rollouts == ()


def test_forget_removes_a_finished_rollouts_series() -> None:
    metrics.ROLLOUT_REQUESTS.labels("gone", "canary", "ok").inc()
    assert sample("cascade_rollout_requests_total",
                  {"rollout": "gone", "arm": "canary", "outcome": "ok"}) == 1  # fmt: skip
    metrics.forget("gone")
    assert (
        REGISTRY.get_sample_value(
            "cascade_rollout_requests_total", {"rollout": "gone", "arm": "canary", "outcome": "ok"}
        )
        is None
    )
