"""Gateway: orchestrates the stages of a recommendation request."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from services.filtering.pipeline import build_filter_chain
from services.gateway.pipeline import ALL_MODEL_PARTS, build_in_process, warm_up_all
from services.gateway.remote import RemoteStages
from services.gateway.routes import recommendations
from services.gateway.served_log import ServedLog
from services.gateway.settings import Settings
from shared.dependencies import Dependencies
from shared.model_loading import ModelBundle, holder_for
from shared.online_store import OnlineStore
from shared.pipeline.backend import StageBackend
from shared.pipeline.budget import LatencyBudget, load_budget
from shared.pipeline.item_indexer import DEFAULT_LOOKBACK_S, ItemIndexer, sync_forever
from shared.pipeline.orchestrator import Orchestrator
from shared.pipeline.warmup import GatewayWarmUp
from shared.service import create_app

log = logging.getLogger(__name__)


async def _in_process(settings: Settings, deps: Dependencies, store: OnlineStore,
                      budget: LatencyBudget) -> Orchestrator:  # fmt: skip
    """Every stage inside the gateway (models load here; readiness waits for them)."""

    def prepare(bundle: ModelBundle) -> None:
        indexer.reapply(bundle)
        warm_up_all(bundle)

    holder = holder_for(settings, ALL_MODEL_PARTS, prepare=prepare)
    indexer = ItemIndexer(store, holder.require, settings.service_name)
    await deps.models(holder)
    deps.background(sync_forever(indexer, settings.index_sync_s, DEFAULT_LOOKBACK_S))
    return build_in_process(store, holder, budget, settings.service_name).orchestrator


def _remote(settings: Settings, deps: Dependencies, store: OnlineStore,
            budget: LatencyBudget) -> Orchestrator:  # fmt: skip
    """Stage services over pooled HTTP; each is an optional readiness check (they fall back)."""
    total = budget.total_ms / 1000.0
    stages = RemoteStages(
        deps.service("candidate_generation", settings.candidate_generation_url, total),
        deps.service("filtering", settings.filtering_url, total),
        deps.service("ranking", settings.ranking_url, total),
        deps.service("reranking", settings.reranking_url, total),
    )
    return Orchestrator(store, stages, build_filter_chain(), budget, settings.service_name)


async def _refresh_trending(orch: Orchestrator, every_s: float) -> None:
    """Keep the last-resort list fresh; a failure only means the old list stays."""
    while True:
        try:
            await orch.refresh_trending()
        except Exception as exc:  # the store is down: the fallback list keeps its last value
            log.warning("trending refresh failed", extra={"error": f"{type(exc).__name__}"})
        await asyncio.sleep(every_s)


def _warm_up(settings: Settings, deps: Dependencies, stages: StageBackend,
             store: OnlineStore) -> None:  # fmt: skip
    """Readiness waits until every stage (and Redis) answered, over warm pooled connections."""
    warm = GatewayWarmUp(
        stages, store, settings.warmup_connections, settings.warmup_timeout_s,
        settings.warmup_give_up_s, before=store.preload_catalog,
    )  # fmt: skip
    deps.readiness.add("warm_up", warm.check)
    deps.on_close(warm.stop)
    warm.start()


def build_app(settings: Settings) -> FastAPI:
    """The gateway app; connections (and models in in_process mode) open in the lifespan."""
    budget = load_budget(settings.latency_budget)

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        store = OnlineStore(deps.redis(settings.redis_url), cache_ttl_s=settings.read_cache_s)
        if settings.mode == "in_process":
            orchestrator = await _in_process(settings, deps, store, budget)
        else:
            orchestrator = _remote(settings, deps, store, budget)
        app.state.orchestrator = orchestrator
        app.state.served_log = None
        if settings.served_log:
            # Best effort: a broker outage must not stop recommendations (optional check).
            producer = deps.kafka_producer(
                settings.kafka_bootstrap, required=False, linger_ms=settings.served_linger_ms
            )
            served = ServedLog(producer, settings.served_topic, settings.served_queue)
            served.start()
            deps.on_close(served.stop)
            app.state.served_log = served
        deps.background(_refresh_trending(orchestrator, settings.trending_refresh_s))
        _warm_up(settings, deps, orchestrator.stages, store)

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(recommendations.router)
    return app
