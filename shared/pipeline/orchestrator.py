"""Orchestrator: one recommendation request through the stages, with deadlines and fallbacks.

Order (independent steps in parallel):
  user state (online store)  ∥  candidate generation
  → item attributes and counters (online store) → filtering → ranking → re-ranking

Fallbacks (each marks the response degraded with the reason):
  user state     → served as an unknown user (conservative filters: no restricted items)
  candidates     → the trending list from the online store (then the last good trending list);
                   also when every source failed and no candidate is left
  item features  → the catalog attributes this process cached (counters zero); items it never
                   saw count as unknown, and the restriction filters drop unknown items
  filtering      → the same filter chain, run here (restrictions are never skipped)
  ranking        → retrieval order
  re-ranking     → the top k by ranker score
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

import numpy as np

from shared.features import UserFeatures
from shared.online_store.types import UserState
from shared.pipeline.backend import Filterer, StageBackend
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.explain import explain
from shared.pipeline.filter_input import FilterInput, FilterUser
from shared.pipeline.items import ItemColumns
from shared.pipeline.merge import merge_sources
from shared.pipeline.recommendation import Recommendation
from shared.pipeline.rerank_state import RerankInput
from shared.pipeline.run import RequestRun, StageFailed
from shared.pipeline.store import FeatureReader
from shared.pipeline.tunables import DEFAULT_TUNABLES, Tunables
from shared.pipeline.types import Candidates, FilterResult, Reranked, Scores, SourceResult


@dataclass
class RecommendRequest:
    """A validated request."""

    user_id: str
    k: int
    request_id: str
    explain: bool = False
    now: float = 0.0  # 0: the current time
    tunables: Tunables = DEFAULT_TUNABLES


def seed_of(request_id: str) -> int:
    """A reproducible exploration seed per request."""
    return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "little")


class Orchestrator:
    """Runs the stages through a StageBackend; never raises for a failed stage."""

    def __init__(
        self,
        store: FeatureReader,
        stages: StageBackend,
        local_filters: Filterer,
        budget: LatencyBudget,
        service: str = "pipeline",
    ) -> None:
        self.store = store
        self.stages = stages
        self.local_filters = local_filters
        self.budget = budget
        self.service = service
        self.last_trending: list[tuple[str, float]] = []

    async def recommend(self, req: RecommendRequest) -> Recommendation:
        """The served list for one request (degraded, never failed, when stages fail)."""
        run = RequestRun(self.budget, self.service)
        now = req.now or time.time()
        user_task = asyncio.ensure_future(self._user(run, req.user_id, now))
        cands = await self._candidates(run, req, now, user_task)
        user = await user_task
        items = await self._items(run, cands, now)
        filtered = await self._filter(run, user, items)
        kept_cands, kept_items = cands.take(filtered.kept), items.take(filtered.kept)
        scores = await self._rank(run, user.features, kept_items, kept_cands, now, req.tunables)
        top, reranked = await self._rerank(run, req, user, kept_items, scores, now)
        served = top[reranked.rows]
        versions = {**cands.model_versions}
        if scores.model_version:
            versions["ranker"] = scores.model_version
        rec = Recommendation(
            request_id=req.request_id, user_id=req.user_id, k=req.k, now=now,
            item_ids=[kept_items.item_ids[i] for i in served], scores=reranked.score,
            propensity=reranked.propensity, explored=reranked.explored,
            cold_start=_cold_start(user), degraded=run.degraded, model_versions=versions,
            timings_ms=run.summary(), server_timing=run.server_timing(),
        )  # fmt: skip
        if req.explain:
            rec.trace = explain(kept_cands, filtered, scores, reranked, served, run)
        return rec

    async def _user(self, run: RequestRun, user_id: str, now: float) -> UserState:
        try:
            return await run.call("user_features", self.store.get_user(user_id, now))
        except StageFailed as exc:
            run.failed(exc)
            run.degrade("user_features", exc.reason, "unknown user")
            return UserState(UserFeatures(user_id=user_id), known=False)

    async def _candidates(
        self, run: RequestRun, req: RecommendRequest, now: float, user: asyncio.Task[UserState]
    ) -> Candidates:
        timeout = run.deadline_s("candidates")
        try:
            work = self.stages.candidates(req.user_id, now, req.tunables, user, timeout)
            cands = await run.call("candidates", work, timeout)
        except StageFailed as exc:
            run.failed(exc)
            return await self._trending_fallback(run, exc.reason, now, req.tunables)
        errors = [f"{name}: {st.error}" for name, st in cands.status.items() if st.error]
        if len(cands) == 0 and errors:  # every source failed open: nothing to rank
            reason = "no candidates, sources failed (" + "; ".join(errors)[:300] + ")"
            run.failed(StageFailed("candidates", reason, "empty"))
            return await self._trending_fallback(run, reason, now, req.tunables)
        return cands

    async def _trending_fallback(
        self, run: RequestRun, reason: str, now: float, tunables: Tunables
    ) -> Candidates:
        n = min(tunables.max_candidates, 200)
        try:
            pairs = await run.call("fallback", self.store.trending(n, now))
            self.last_trending = pairs
            fallback = "trending"
        except StageFailed:
            pairs, fallback = self.last_trending, "last known trending list"
        run.degrade("candidates", reason, fallback)
        ids = [p[0] for p in pairs]
        scores = np.fromiter((p[1] for p in pairs), np.float32, len(pairs))
        return merge_sources([SourceResult("trending_fallback", ids, scores)], len(ids) or 1)

    async def refresh_trending(self, now: float | None = None) -> None:
        """Keep the last-resort trending list fresh (called periodically by the gateway)."""
        self.last_trending = await self.store.trending(200, now or time.time())

    async def _items(self, run: RequestRun, cands: Candidates, now: float) -> ItemColumns:
        if not cands.item_ids:
            return ItemColumns.unknown([])
        try:
            batch = await run.call("item_features", self.store.get_items(cands.item_ids, now))
            return ItemColumns.from_batch(batch)
        except StageFailed as exc:
            run.failed(exc)
            batch = self.store.cached_items(cands.item_ids, now)
            known = int(np.count_nonzero(batch.found))
            fallback = f"cached attributes of {known}/{len(batch)} items, counters zero"
            run.degrade("item_features", exc.reason, fallback)
            return ItemColumns.from_batch(batch)

    async def _filter(self, run: RequestRun, user: UserState, items: ItemColumns) -> FilterResult:
        if len(items) == 0:
            return FilterResult(np.zeros(0, dtype=np.int64))
        batch = FilterInput.build(items, FilterUser.from_state(user))
        timeout = run.deadline_s("filtering")
        try:
            return await run.call("filtering", self.stages.filter(batch, timeout), timeout)
        except StageFailed as exc:
            run.failed(exc)
            run.degrade("filtering", exc.reason, "filtered in the gateway")
            return self.local_filters.apply(batch)

    async def _rank(
        self, run: RequestRun, user: UserFeatures, items: ItemColumns, cands: Candidates,
        now: float, tunables: Tunables,
    ) -> Scores:  # fmt: skip
        if len(items) == 0:
            return Scores(np.zeros(0, dtype=np.float32))
        timeout = run.deadline_s("ranking")
        try:
            work = self.stages.rank(user, items, now, tunables.blend_weights, timeout)
            return await run.call("ranking", work, timeout)
        except StageFailed as exc:
            run.failed(exc)
            run.degrade("ranking", exc.reason, "retrieval order")
            return Scores(cands.retrieval_scores())

    async def _rerank(
        self, run: RequestRun, req: RecommendRequest, user: UserState, items: ItemColumns,
        scores: Scores, now: float,
    ) -> tuple[np.ndarray, Reranked]:  # fmt: skip
        t = req.tunables
        depth = max(t.rerank_depth, req.k + t.exploration_pool)
        top = _top_rows(scores.score, depth)
        sub = items.take(top)
        imp = user.impressions
        inp = RerankInput(
            item_ids=sub.item_ids, score=scores.score[top], genre_mask=sub.genre_mask,
            added_ts=sub.added_ts,
            impressions=np.fromiter((imp.get(i, 0) for i in sub.item_ids), np.int64, len(sub)),
            k=req.k, now=now, seed=seed_of(req.request_id), tunables=t,
        )  # fmt: skip
        if len(inp) == 0:
            return top, _no_rerank(inp)
        timeout = run.deadline_s("reranking")
        try:
            return top, await run.call("reranking", self.stages.rerank(inp, timeout), timeout)
        except StageFailed as exc:
            run.failed(exc)
            run.degrade("reranking", exc.reason, "top k by ranker score")
            return top, _no_rerank(inp)


def _top_rows(score: np.ndarray, n: int) -> np.ndarray:
    """Rows of the n highest scores, best first (stable for ties: retrieval order wins)."""
    if len(score) > n:
        part = np.argpartition(-score, n - 1)[:n]
        return part[np.argsort(-score[part], kind="stable")]
    return np.argsort(-score, kind="stable")


def _no_rerank(inp: RerankInput) -> Reranked:
    """The fallback list: the first k (``inp`` is sorted by score already)."""
    k = min(inp.k, len(inp))
    return Reranked(
        rows=np.arange(k, dtype=np.int64),
        score=np.asarray(inp.score[:k], dtype=np.float32),
        propensity=np.ones(k, dtype=np.float32),
        explored=np.zeros(k, dtype=bool),
    )


def _cold_start(user: UserState) -> str:
    if not user.known:
        return "unknown_user"
    return "returning" if len(user.features.history) else "new_user"
