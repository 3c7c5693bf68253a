"""The gateway's runner in-process: a whole request, the explain trace, Server-Timing, cold
start, variants, and the fallback of every step when it fails or runs late (never an error)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from services.candidate_generation.pipeline import build_candidate_generation
from services.filtering.pipeline import build_filtering
from services.gateway.pipeline import GATEWAY_KNOBS, PIPELINE
from services.gateway.request_state import RequestState
from services.gateway.response import RecommendationResponse, response_body, served_record
from services.gateway.runner import Runner
from services.gateway.stage_clients import LocalStage
from services.gateway.stages import Stages
from services.gateway.steps.candidates import refresh_trending
from services.gateway.steps.deps import StepDeps
from services.ranking.stage import RankingStage
from services.reranking.pipeline import build_reranking
from shared.features import GENRES
from shared.frame import Frame
from shared.pipeline.budget import LatencyBudget, StageBudgets
from shared.pipeline.context import RequestContext, VariantSpec
from shared.pipeline.knobs import KnobTable
from shared.pipeline.stage import StageResult
from tests.integration.serving_fixtures import (
    MemoryStore,
    catalog,
    load_models,
    user_state,
    write_synthetic_bundle,
)

NOW = 1_700_000_000.0
ITEMS = catalog(300, added_ts=NOW - 86_400)
STAGES = ("candidates", "filtering", "ranking", "reranking")
# Deadlines generous enough for a busy CI machine; the "slow" tests sleep far past them.
BUDGET = LatencyBudget(
    total_ms=4000,
    stages=StageBudgets(
        user_features=500, candidates=800, item_features=500, filtering=300, ranking=500,
        reranking=300, fallback=300,
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_models(write_synthetic_bundle(tmp_path_factory.mktemp("b"), ITEMS))


class Flaky:
    """A stage client that can be made to fail or to hang."""

    def __init__(self, inner: LocalStage) -> None:
        self.inner = inner
        self.stage = inner.stage
        self.fail = False
        self.hang = False

    async def call(self, ctx: RequestContext, frame: Frame) -> StageResult[Any]:
        if self.fail:
            raise ConnectionError(f"{self.stage.name} service unreachable")
        if self.hang:
            await asyncio.sleep(30)
        return await self.inner.call(ctx, frame)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore(ITEMS)
    drama = [1.0 if g == "Drama" else 0.0 for g in GENRES]
    s.users["u1"] = user_state(
        "u1", ("1", "2", "3"), age=16, genre_affinity=drama, seen=frozenset({"4", "5"}),
        blocked=frozenset({"6"}), region="US", segment="15-24|f",
    )  # fmt: skip
    s.users["fresh"] = user_state("fresh", (), age=40, gender="M")
    return s


def build(
    store: MemoryStore, models: Any, budget: LatencyBudget = BUDGET
) -> tuple[Runner, dict[str, Flaky]]:
    stages = Stages(
        build_candidate_generation(store, models, budget),
        build_filtering(),
        RankingStage(models),
        build_reranking(models),
    )
    clients = {n: Flaky(LocalStage(s)) for n, s in stages.by_name().items()}
    deps = StepDeps(store, dict(clients), stages.filtering, stages.hydrated(),
                    KnobTable(GATEWAY_KNOBS))  # fmt: skip
    return Runner(PIPELINE, deps, budget, "test"), clients


@pytest.fixture
def pipeline(store: MemoryStore, models: Any) -> tuple[Runner, dict[str, Flaky]]:
    return build(store, models)


def req(
    user: str = "u1", k: int = 10, explain: bool = True, variant: VariantSpec | None = None
) -> RequestState:
    return RequestState(f"r-{user}", user, k, NOW, variant or VariantSpec(), explain)


def assert_safe(r: RequestState, store: MemoryStore, user: str = "u1") -> None:
    """What every answer must respect, degraded or not."""
    state = store.users[user]
    ids = r.served.ids if r.served is not None else []
    assert len(ids) == len(set(ids))
    assert not set(ids) & (state.seen | state.blocked)
    restricted = {i.item_id for i in ITEMS if i.age_restricted or i.regions}
    assert not set(ids) & restricted  # a 16-year-old in the US


async def test_whole_request_with_trace_timings_and_contract(pipeline: Any, store: Any) -> None:
    runner, _ = pipeline
    r = await runner.run(req())
    assert r.run.degraded == [] and r.served is not None and len(r.served) == 10
    assert r.cold_start == "returning"
    assert_safe(r, store)
    assert np.all(np.isfinite(r.served["final_score"]))
    assert set(r.models) >= {"user_tower", "item_index", "ranker"}
    assert all(label.endswith("(@production)") for label in r.models.values())
    timing = r.run.server_timing()
    for step in (
        "user_features",
        "candidates",
        "item_features",
        "filtering",
        "ranking",
        "reranking",
    ):
        assert f"{step};dur=" in timing
    body = response_body(r, [f"title {i}" for i in r.served.ids])
    RecommendationResponse.model_validate(body)  # the declared contract holds
    assert body["variant"] == "production" and body["items"][0]["title"].startswith("title ")
    by_id = {i.item_id: i for i in ITEMS}
    for item in body["items"]:
        assert set(item["genres"]) == set(by_id[item["item_id"]].genres)
        assert item["year"] == by_id[item["item_id"]].release_year
    trace = body["explain"]
    assert [i["item_id"] for i in trace["items"]] == r.served.ids
    first = trace["items"][0]
    assert first["sources"] and set(first["heads"]) == {"p_interact", "p_like"}
    assert first["filters_passed"] == ["age_restricted", "blocked", "region_restricted", "seen",
                                       "duplicate"]  # fmt: skip
    assert {"fatigue", "freshness", "mmr_redundancy"} <= set(first["rerank"])
    assert trace["removed_counts"].get("age_restricted", 0) > 0
    assert set(trace["sources"]) >= {"two_tower", "item_to_item", "trending"}
    assert trace["rerankers"] == ["fatigue", "freshness", "mmr", "exploration"]
    assert sum(bool(i.get("explored")) for i in body["items"]) == int(r.served["explored"].sum())
    record = served_record(r)
    assert record["variant"] == "production" and record["item_ids"] == r.served.ids


async def test_cold_start_labels(pipeline: Any) -> None:
    runner, _ = pipeline
    assert (await runner.run(req("fresh"))).cold_start == "new_user"
    unknown = await runner.run(req("nobody-at-all"))
    assert unknown.cold_start == "unknown_user" and unknown.run.degraded == []
    assert set(unknown.sources) == {"fresh_items", "segment_popular", "trending"}
    assert unknown.served is not None and len(unknown.served) == 10


async def test_a_variant_changes_what_its_knobs_say(pipeline: Any) -> None:
    runner, _ = pipeline
    base = await runner.run(req(explain=False))
    explore = VariantSpec(name="explore", knobs={"exploration": {"slots": 3}})
    tuned = await runner.run(req(explain=False, variant=explore))
    assert int(base.served["explored"].sum()) == 1  # type: ignore[index]
    assert int(tuned.served["explored"].sum()) == 3  # type: ignore[index]
    assert served_record(tuned)["variant"] == "explore"


@pytest.mark.parametrize("mode", ["fail", "hang"])
@pytest.mark.parametrize("stage", STAGES)
async def test_each_stage_falls_back(pipeline: Any, store: Any, stage: str, mode: str) -> None:
    runner, clients = pipeline
    setattr(clients[stage], mode, True)
    r = await runner.run(req())
    assert len(r.run.degraded) == 1, r.run.degraded
    reason = r.run.degraded[0]
    assert reason.startswith(f"{stage}: ")
    assert ("unreachable" if mode == "fail" else "timeout after") in reason
    fallback = {
        "candidates": "fallback: trending",
        "filtering": "fallback: filtered in the gateway",
        "ranking": "fallback: retrieval order",
        "reranking": "fallback: top k by ranker score",
    }[stage]
    assert reason.endswith(fallback)
    assert r.served is not None and len(r.served) == 10
    assert_safe(r, store)  # restrictions hold in every fallback
    trace = response_body(r, [""] * 10)["explain"]
    if stage == "ranking":
        assert trace["items"][0]["heads"] == {}  # no ranker: retrieval order
    if stage == "reranking":
        assert np.all(np.diff(r.served["final_score"]) <= 0) and not r.served["explored"].any()


async def test_store_failures_fall_back(pipeline: Any, store: MemoryStore) -> None:
    runner, _ = pipeline
    store.fail = {"get_user"}
    r = await runner.run(req())
    assert r.cold_start == "unknown_user" and r.run.degraded[0].startswith("user_features: ")
    assert_safe(r, store)  # served as unknown: no seen info, but no restricted items either
    store.fail = {"get_items"}
    r = await runner.run(req())
    n = len(r.frame) + sum(len(v) for v in r.removed.values())
    assert r.run.degraded == [
        "item_features: ConnectionError: get_items: store unavailable; "
        f"fallback: cached attributes of {n}/{n} items, counters zero"
    ]
    assert_safe(r, store)


async def test_candidates_fall_back_to_the_last_known_trending_list(
    pipeline: Any, store: Any
) -> None:
    runner, clients = pipeline
    await refresh_trending(runner.deps, NOW)
    clients["candidates"].fail = True
    store.fail = {"trending"}
    r = await runner.run(req())
    assert r.run.degraded[0].endswith("fallback: last known trending list")
    assert r.served is not None and len(r.served) == 10


async def test_everything_down_still_answers(pipeline: Any, store: MemoryStore) -> None:
    runner, clients = pipeline
    for c in clients.values():
        c.fail = True
    store.fail = {"get_user", "get_items", "trending", "popular_in_segment", "fresh_items"}
    r = await runner.run(req())
    assert [d.split(":")[0] for d in r.run.degraded] == ["user_features", "candidates"]
    assert response_body(r, [])["items"] == []  # nothing known: an empty list, degraded


async def test_deadline_exhaustion_skips_the_rest(store: Any, models: Any) -> None:
    budget = LatencyBudget(total_ms=30, stages=StageBudgets(candidates=500))
    runner, clients = build(store, models, budget)
    clients["candidates"].hang = True
    await refresh_trending(runner.deps, NOW)
    r = await runner.run(req())
    reasons = {d.split(":")[0]: d for d in r.run.degraded}
    assert "timeout after" in reasons["candidates"]  # cut to what was left of the 30 ms
    assert reasons["candidates"].endswith("fallback: last known trending list")
    for step in ("item_features", "filtering", "ranking", "reranking"):
        assert "request deadline exhausted" in reasons[step]
    trending = [p[0] for p in runner.deps.last_trending]
    assert r.served is not None and r.served.ids == [i for i in trending if i in r.served.ids][:10]


async def test_no_candidates_because_every_source_failed(pipeline: Any, store: MemoryStore) -> None:
    runner, _ = pipeline
    await refresh_trending(runner.deps, NOW)
    store.fail = {"get_user", "trending", "popular_in_segment", "fresh_items"}
    r = await runner.run(req())
    reasons = {d.split(":")[0]: d for d in r.run.degraded}
    assert "no candidates, sources failed" in reasons["candidates"]
    assert reasons["candidates"].endswith("fallback: last known trending list")
    assert r.served is not None and len(r.served) == 10


async def test_a_variant_naming_a_model_not_held_degrades_and_says_why(pipeline: Any) -> None:
    runner, _ = pipeline
    canary = VariantSpec(name="canary", models={"ranker": "canary"})
    r = await runner.run(req(variant=canary))
    reason = next(d for d in r.run.degraded if d.startswith("ranking: "))
    assert "@canary: not loaded" in reason and reason.endswith("fallback: retrieval order")
    assert r.served is not None and len(r.served) == 10
