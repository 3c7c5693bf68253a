"""The orchestrator in-process: a whole request, the explain trace, Server-Timing, cold start,
and the fallback of every stage when it fails or runs late (never an exception)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from services.gateway.pipeline import build_in_process
from shared.features import GENRES
from shared.online_store.types import UserState
from shared.pipeline.backend import LocalStages
from shared.pipeline.budget import LatencyBudget, StageBudgets
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.items import ItemColumns
from shared.pipeline.orchestrator import Orchestrator, RecommendRequest
from shared.pipeline.rerank_state import RerankInput
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import Candidates, FilterResult, Reranked, Scores
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
        user_features=500,
        candidates=800,
        item_features=500,
        filtering=300,
        ranking=500,
        reranking=300,
        fallback=300,
    ),
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_models(write_synthetic_bundle(tmp_path_factory.mktemp("b"), ITEMS))


class FlakyStages:
    """LocalStages whose calls can be made to fail or to hang, per stage."""

    def __init__(self, inner: LocalStages) -> None:
        self.inner = inner
        self.fail: set[str] = set()
        self.hang: set[str] = set()

    async def _gate(self, stage: str) -> None:
        if stage in self.fail:
            raise ConnectionError(f"{stage} service unreachable")
        if stage in self.hang:
            await asyncio.sleep(30)

    async def candidates(
        self,
        user_id: str,
        now: float,
        tunables: Tunables,
        user: asyncio.Task[UserState],
        timeout_s: float,
    ) -> Candidates:
        await self._gate("candidates")
        return await self.inner.candidates(user_id, now, tunables, user, timeout_s)

    async def filter(self, batch: FilterInput, timeout_s: float) -> FilterResult:
        await self._gate("filtering")
        return await self.inner.filter(batch, timeout_s)

    async def rank(
        self,
        user: Any,
        items: ItemColumns,
        now: float,
        weights: dict[str, float] | None,
        timeout_s: float,
    ) -> Scores:
        await self._gate("ranking")
        return await self.inner.rank(user, items, now, weights, timeout_s)

    async def rerank(self, inp: RerankInput, timeout_s: float) -> Reranked:
        await self._gate("reranking")
        return await self.inner.rerank(inp, timeout_s)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore(ITEMS)
    drama = [1.0 if g == "Drama" else 0.0 for g in GENRES]
    s.users["u1"] = user_state(
        "u1",
        ("1", "2", "3"),
        age=16,
        genre_affinity=drama,
        seen=frozenset({"4", "5"}),
        blocked=frozenset({"6"}),
        region="US",
        segment="15-24|f",
    )
    s.users["fresh"] = user_state("fresh", (), age=40, gender="M")
    return s


@pytest.fixture
def pipeline(store: MemoryStore, models: Any) -> tuple[Orchestrator, FlakyStages]:
    base = build_in_process(store, models, BUDGET).orchestrator
    flaky = FlakyStages(base.stages)  # type: ignore[arg-type]
    return Orchestrator(store, flaky, base.local_filters, BUDGET), flaky


def req(user: str = "u1", k: int = 10, explain: bool = True) -> RecommendRequest:
    return RecommendRequest(user_id=user, k=k, request_id=f"r-{user}", explain=explain, now=NOW)


def assert_safe(rec: Any, store: MemoryStore, user: str = "u1") -> None:
    """What every answer must respect, degraded or not."""
    state = store.users[user]
    assert len(rec.item_ids) == len(set(rec.item_ids))
    assert not set(rec.item_ids) & (state.seen | state.blocked)
    restricted = {r.item_id for r in ITEMS if r.age_restricted or r.regions}
    assert not set(rec.item_ids) & restricted  # a 16-year-old in the US


async def test_whole_request_with_trace_and_timings(pipeline: Any, store: Any) -> None:
    orch, _ = pipeline
    rec = await orch.recommend(req())
    assert rec.degraded == [] and len(rec.item_ids) == 10 and rec.cold_start == "returning"
    assert_safe(rec, store)
    assert np.all(np.isfinite(rec.scores)) and rec.model_versions["ranker"] == "synthetic-1"
    assert set(rec.model_versions) >= {"user_tower", "item_index", "ranker"}
    for stage in (
        "user_features",
        "candidates",
        "item_features",
        "filtering",
        "ranking",
        "reranking",
    ):
        assert f"{stage};dur=" in rec.server_timing
    assert rec.server_timing.endswith(tuple(f"{d}" for d in range(10)))  # total;dur=x.xx
    trace = rec.trace
    assert [i["item_id"] for i in trace["items"]] == rec.item_ids
    first = trace["items"][0]
    assert first["sources"] and set(first["heads"]) == {"p_interact", "p_like"}
    assert first["filters_passed"] == [
        "age_restricted",
        "blocked",
        "region_restricted",
        "seen",
        "duplicate",
    ]
    assert {"fatigue", "freshness", "mmr_redundancy"} <= set(first["rerank"])
    assert trace["removed_counts"].get("age_restricted", 0) > 0
    assert set(trace["sources"]) >= {"two_tower", "item_to_item", "trending"}
    assert trace["rerankers"] == ["fatigue", "freshness", "mmr", "exploration"]
    body = rec.to_response()
    assert body["degraded"] is False and body["explain"] is trace
    assert sum(bool(i.get("explored")) for i in body["items"]) == int(rec.explored.sum())


async def test_cold_start_labels(pipeline: Any) -> None:
    orch, _ = pipeline
    assert (await orch.recommend(req("fresh"))).cold_start == "new_user"
    unknown = await orch.recommend(req("nobody-at-all"))
    assert unknown.cold_start == "unknown_user" and unknown.degraded == []
    assert set(unknown.trace["sources"]) == {"fresh_items", "segment_popular", "trending"}
    assert len(unknown.item_ids) == 10


@pytest.mark.parametrize("mode", ["fail", "hang"])
@pytest.mark.parametrize("stage", STAGES)
async def test_each_stage_falls_back(pipeline: Any, store: Any, stage: str, mode: str) -> None:
    orch, flaky = pipeline
    getattr(flaky, mode).add(stage)
    rec = await orch.recommend(req())
    assert len(rec.degraded) == 1, rec.degraded
    reason = rec.degraded[0]
    assert reason.startswith(f"{stage}: ")
    assert ("unreachable" if mode == "fail" else "timeout after") in reason
    fallback = {
        "candidates": "fallback: trending",
        "filtering": "fallback: filtered in the gateway",
        "ranking": "fallback: retrieval order",
        "reranking": "fallback: top k by ranker score",
    }[stage]
    assert reason.endswith(fallback)
    assert len(rec.item_ids) == 10
    assert_safe(rec, store)  # restrictions hold in every fallback
    if stage == "ranking":
        assert rec.trace["items"][0]["heads"] == {}  # no ranker: retrieval order
    if stage == "reranking":
        assert np.all(np.diff(rec.scores) <= 0) and not rec.explored.any()


async def test_store_failures_fall_back(pipeline: Any, store: MemoryStore) -> None:
    orch, _ = pipeline
    store.fail = {"get_user"}
    rec = await orch.recommend(req())
    assert rec.cold_start == "unknown_user" and rec.degraded[0].startswith("user_features: ")
    assert_safe(rec, store)  # served as unknown: no seen info, but no restricted items either
    store.fail = {"get_items"}
    rec = await orch.recommend(req())
    n = len(ITEMS)  # every item is a candidate; the in-memory store's cache knows them all
    assert rec.degraded == [
        "item_features: ConnectionError: get_items: store unavailable; "
        f"fallback: cached attributes of {n}/{n} items, counters zero"
    ]
    assert_safe(rec, store)


async def test_candidates_fall_back_to_the_last_known_trending_list(
    pipeline: Any, store: Any
) -> None:
    orch, flaky = pipeline
    await orch.refresh_trending(NOW)
    flaky.fail.add("candidates")
    store.fail = {"trending"}
    rec = await orch.recommend(req())
    assert rec.degraded[0].endswith("fallback: last known trending list")
    assert len(rec.item_ids) == 10


async def test_everything_down_still_answers(pipeline: Any, store: MemoryStore) -> None:
    orch, flaky = pipeline
    flaky.fail.update(STAGES)
    store.fail = {"get_user", "get_items", "trending", "popular_in_segment", "fresh_items"}
    rec = await orch.recommend(req())
    assert [d.split(":")[0] for d in rec.degraded] == ["user_features", "candidates"]
    assert rec.item_ids == []  # nothing known at all: an empty list, marked degraded, no error


async def test_deadline_exhaustion_skips_the_rest(store: Any, models: Any) -> None:
    budget = LatencyBudget(total_ms=30, stages=StageBudgets(candidates=500))
    base = build_in_process(store, models, budget).orchestrator
    flaky = FlakyStages(base.stages)  # type: ignore[arg-type]
    flaky.hang.add("candidates")
    orch = Orchestrator(store, flaky, base.local_filters, budget)
    await orch.refresh_trending(NOW)
    rec = await orch.recommend(req())
    reasons = {d.split(":")[0]: d for d in rec.degraded}
    assert "timeout after" in reasons["candidates"]  # cut to what was left of the 30 ms
    assert reasons["candidates"].endswith("fallback: last known trending list")
    for stage in ("item_features", "filtering", "ranking", "reranking"):
        assert "request deadline exhausted" in reasons[stage]
    assert (
        len(rec.item_ids) == 10
        and rec.item_ids == [p[0] for p in orch.last_trending if p[0] in rec.item_ids][:10]
    )


async def test_no_candidates_because_every_source_failed(pipeline: Any, store: MemoryStore) -> None:
    orch, _ = pipeline
    await orch.refresh_trending(NOW)
    store.fail = {"get_user", "trending", "popular_in_segment", "fresh_items"}
    rec = await orch.recommend(req())
    reasons = {d.split(":")[0]: d for d in rec.degraded}
    assert "no candidates, sources failed" in reasons["candidates"]
    assert reasons["candidates"].endswith("fallback: last known trending list")
    assert len(rec.item_ids) == 10
