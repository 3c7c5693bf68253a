"""Gateway: orchestrates the stages of a recommendation request."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from services.filtering.pipeline import build_filter_chain
from services.gateway.pipeline import ALL_MODEL_PARTS, build_in_process
from services.gateway.remote import RemoteStages
from services.gateway.routes import recommendations
from services.gateway.served_log import ServedLog
from services.gateway.settings import Settings
from shared.dependencies import Dependencies
from shared.model_loading import ModelHolder, locator_for
from shared.online_store import OnlineStore
from shared.pipeline.budget import LatencyBudget, load_budget
from shared.pipeline.orchestrator import Orchestrator
from shared.service import create_app

log = logging.getLogger(__name__)


async def _in_process(settings: Settings, deps: Dependencies, store: OnlineStore,
                      budget: LatencyBudget) -> Orchestrator:  # fmt: skip
    """Every stage inside the gateway (models load here; readiness waits for them)."""
    locator = locator_for(
        settings.models_dir, settings.mlflow_uri, settings.model_alias,
        settings.model_cache_dir, ALL_MODEL_PARTS,
    )  # fmt: skip
    holder = ModelHolder(locator, ALL_MODEL_PARTS, settings.model_poll_s)
    deps.readiness.add("models", holder.check)
    deps.on_close(holder.stop)
    await holder.start()
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
    """Keep the last-resort list fresh; failures only mean the old list stays."""
    while True:
        with contextlib.suppress(Exception):
            await orch.refresh_trending()
        await asyncio.sleep(every_s)


def build_app(settings: Settings) -> FastAPI:
    """The gateway app; connections (and models in in_process mode) open in the lifespan."""
    budget = load_budget(settings.latency_budget)

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        store = OnlineStore(deps.redis(settings.redis_url))
        if settings.mode == "in_process":
            app.state.orchestrator = await _in_process(settings, deps, store, budget)
        else:
            app.state.orchestrator = _remote(settings, deps, store, budget)
        app.state.served_log = None
        if settings.served_log:
            # Best effort: a broker outage must not stop recommendations (optional check).
            producer = deps.kafka_producer(settings.kafka_bootstrap, required=False)
            served = ServedLog(producer, settings.served_topic, settings.served_queue)
            served.start()
            deps.on_close(served.stop)
            app.state.served_log = served
        task = asyncio.create_task(
            _refresh_trending(app.state.orchestrator, settings.trending_refresh_s)
        )

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        deps.on_close(cancel)

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(recommendations.router)
    return app
