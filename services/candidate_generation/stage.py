"""CandidateGenerationStage: every source concurrently, each under its own deadline; merged."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from services.candidate_generation.ease_score import EaseScore
from services.candidate_generation.merge import Merge
from services.candidate_generation.sources.base import SourceCall, SourceResult
from shared.frame import Frame
from shared.models.model_set import ModelSet
from shared.online_store.store import FeatureReader
from shared.pipeline.budget import LatencyBudget
from shared.pipeline.context import RequestContext
from shared.pipeline.knobs import KnobTable
from shared.pipeline.stage import StageResult
from shared.platform.metrics import STAGE_ERRORS, STAGE_LATENCY

log = logging.getLogger(__name__)
SLOT = "retrieval"


class SourceStatus(msgspec.Struct, array_like=True):
    """One source's outcome for a request: items found, milliseconds, what went wrong."""

    n: int
    ms: float
    error: str | None = None


class CandidatesInfo(msgspec.Struct):
    """Per-source outcomes and the retrieval model that served."""

    sources: dict[str, SourceStatus]
    models: dict[str, str]


class CandidateGenerationStage:
    """Fail-open fan-out over the declared sources (a failed source contributes nothing).

    Answers a new frame (the merged candidates in retrieval order) with one ``source_<name>``
    column per source that ran.
    """

    name = "candidates"
    path = "/v1/candidates"
    aligned = False
    info_type = CandidatesInfo

    def __init__(
        self,
        sources: Sequence[Any],
        store: FeatureReader | None,
        models: ModelSet | None,
        budget: LatencyBudget,
        service: str = "pipeline",
    ) -> None:
        self.sources = list(sources)
        self.merger = Merge()
        self.ease_score = EaseScore()
        self.components = [*self.sources, self.merger, self.ease_score]
        self.knobs = KnobTable(self.components)
        self.store = store  # set by a service whose Redis opens in its lifespan
        self.models = models
        self.deadline_s = {s.name: budget.source_s(s.name) for s in self.sources}
        self.service = service
        # I/O sources start first so their Redis round trips overlap the CPU-bound ANN work.
        self._start_order = sorted(self.sources, key=lambda s: bool(s.cpu_bound))
        self._latency = {s.name: STAGE_LATENCY.labels(service, f"source:{s.name}") for s in sources}

    def needs(self) -> tuple[str, ...]:
        """Nothing: candidates start the frame."""
        return ()

    def provides(self) -> tuple[str, ...]:
        """One score column per source, and every candidate's EASE score."""
        return (*(c for s in self.sources for c in s.provides), *self.ease_score.provides)

    async def run(self, ctx: RequestContext, frame: Frame) -> StageResult[CandidatesInfo]:
        """The merged candidates of the request's user under its variant's retrieval model."""
        if self.models is None or self.store is None:
            raise RuntimeError("a declaration of the stage (no models, no store) cannot run")
        bundle = self.models.get(ctx.variant.alias(SLOT))
        knobs = self.knobs.resolve(ctx.variant)
        call = SourceCall(ctx, ctx.user.features(), bundle, self.store)
        active = [s for s in self._start_order if ctx.user.known or s.serves_unknown_users]
        done = await asyncio.gather(*(self._run(s, call, knobs[s.name]) for s in active))
        by_name = {r.source: r for r in done}
        ordered = [by_name[s.name] for s in self.sources if s.name in by_name]
        merged = self.merger.merge(ordered, knobs[self.merger.name])  # type: ignore[arg-type]
        merged = self.ease_score.annotate(merged, call)
        sources = {r.source: SourceStatus(len(r.item_ids), round(r.elapsed_ms, 3), r.error)
                   for r in ordered}  # fmt: skip
        models = {p: bundle.labels.get(p, bundle.bundle_id) for p in ("user_tower", "item_index")}
        return StageResult(merged, CandidatesInfo(sources, models))

    async def _run(self, source: Any, call: SourceCall, knobs: Any) -> SourceResult:
        start = time.perf_counter()
        timeout = self.deadline_s[source.name]
        try:
            async with asyncio.timeout(timeout):  # (wait_for would cost one more task)
                result: SourceResult = await source.fetch(call, knobs)
        except TimeoutError:
            result = SourceResult.failed(source.name, f"timeout after {timeout * 1000:.0f} ms")
        except Exception as exc:  # fail-open: one broken source never fails the request
            result = SourceResult.failed(source.name, f"{type(exc).__name__}: {exc}")
        elapsed = time.perf_counter() - start
        result.elapsed_ms = elapsed * 1000.0
        self._latency[source.name].observe(elapsed)
        if result.error:
            STAGE_ERRORS.labels(self.service, f"source:{source.name}", "failed").inc()
            log.warning("source failed", extra={"source": source.name, "error": result.error})
        return result
