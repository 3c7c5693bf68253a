"""Gateway: runs the declared request path (services/gateway/pipeline.py) under one variant."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from fastapi import FastAPI

from services.gateway.last_resort import last_resort
from services.gateway.pipeline import GATEWAY_KNOBS, PIPELINE
from services.gateway.rollouts.follower import AssignmentFollower
from services.gateway.rollouts.gateway_rollouts import GatewayRollouts
from services.gateway.rollouts.shadow import ShadowRunner
from services.gateway.routes.recommendations import GatewayCore, recommendations_route
from services.gateway.runner import Runner
from services.gateway.served_log import ServedLog
from services.gateway.settings import Settings
from services.gateway.stage_clients import LocalStage, RemoteStage, StageClient
from services.gateway.stages import Stages, declared_stages, in_process_stages
from services.gateway.steps.candidates import refresh_trending
from services.gateway.steps.deps import StepDeps
from services.gateway.variants import VariantRegistry
from services.gateway.warmup import GatewayWarmUp
from shared.online_store.health import StoreWatch
from shared.online_store.reader import OnlineStore
from shared.pipeline.budget import LatencyBudget, load_budget
from shared.pipeline.knobs import KnobTable
from shared.platform.http_client import ServiceClient
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app

log = logging.getLogger(__name__)


def _remote_clients(settings: Settings, resources: Resources, stages: Stages,
                    budget: LatencyBudget) -> dict[str, StageClient]:  # fmt: skip
    """Stage services over pooled HTTP; each is an optional readiness check (they fall back).

    With ``filtering_in_gateway`` the filtering stage runs here (it needs no model)."""
    total = budget.total_ms / 1000.0
    urls = {
        "candidates": ("candidate_generation", settings.candidate_generation_url),
        "filtering": ("filtering", settings.filtering_url),
        "ranking": ("ranking", settings.ranking_url),
        "reranking": ("reranking", settings.reranking_url),
    }
    clients: dict[str, StageClient] = {}
    for name, stage in stages.by_name().items():
        if name == "filtering" and settings.filtering_in_gateway:
            clients[name] = LocalStage(stage)
        else:
            clients[name] = RemoteStage(stage, resources.service(*urls[name], total))
    return clients


def _elsewhere(resources: Resources, budget: LatencyBudget, client: StageClient,
               url: str) -> StageClient:  # fmt: skip
    """A client of ``client``'s stage at another URL (a rollout's canary deployment)."""
    service = ServiceClient(f"{client.stage.name}@{url}", url, budget.total_ms / 1000.0,
                            token=resources.read_token)  # fmt: skip
    resources.on_close(service.aclose)
    return RemoteStage(client.stage, service)


async def _refresh_forever(deps: StepDeps, every_s: float) -> None:
    """Keep the last-resort list fresh; a failure only means the old list stays."""
    while True:
        try:
            await refresh_trending(deps, time.time())
        except Exception as exc:  # the store is down: the fallback list keeps its last value
            log.warning("trending refresh failed", extra={"error": f"{type(exc).__name__}"})
        await asyncio.sleep(every_s)


def _served_log(settings: Settings, resources: Resources) -> ServedLog | None:
    """The served-list log (best effort: a broker outage must not stop recommendations)."""
    if not settings.served_log:
        return None
    from shared.stream.producer import register_producer

    producer = register_producer(
        resources, settings.kafka_bootstrap, required=False, linger_ms=settings.served_linger_ms
    )
    served = ServedLog(producer, settings.served_topic, settings.served_queue)
    served.start()
    resources.on_close(served.stop)
    return served


def _rollouts(settings: Settings, resources: Resources, deps: StepDeps, budget: LatencyBudget,
              served: ServedLog | None) -> GatewayRollouts | None:  # fmt: skip
    """The split and the shadow, following the controller (None: rollouts are off)."""
    if not settings.follow_rollouts:
        return None
    client = ServiceClient("rollouts", settings.rollouts_url, timeout_s=2.0, max_connections=2,
                           token=resources.read_token)  # fmt: skip
    resources.on_close(client.aclose)
    follower = AssignmentFollower(client, settings.rollouts_poll_s, settings.rollouts_stale_s)
    resources.readiness.add("rollouts", follower.check, required=False)
    resources.background(follower.follow_forever())
    shadow = None
    if settings.shadow_max_in_flight > 0:
        # The shadow reuses the user production read: its pipeline starts after that step.
        steps = [s for s in PIPELINE if getattr(s, "name", "") != "user_features"]
        shadow_budget = budget.scaled(settings.shadow_budget_factor)
        runner = Runner(steps, deps, shadow_budget, f"{settings.service_name}_shadow")
        ranking_on = [s for s in steps if getattr(s, "name", "") in ("ranking", "reranking")]
        rank_only = Runner(ranking_on, deps, shadow_budget, f"{settings.service_name}_shadow")
        shadow = ShadowRunner(runner, settings.shadow_max_in_flight, rank_only,
                              served.log if served is not None else None)  # fmt: skip
        resources.on_close(shadow.drain)
    return GatewayRollouts(follower, shadow, deps.store.remember_arms)


def _store_check(watch: StoreWatch) -> Callable[[], Awaitable[tuple[bool, str]]]:
    """Readiness line of the store (optional: the gateway serves fallbacks meanwhile)."""

    async def check() -> tuple[bool, str]:
        return (not watch.problem, watch.problem or "ok: catalog present, no rebuild running")

    return check


def build_app(settings: Settings) -> Service:
    """The gateway; the wiring and the variants are checked here, before anything starts."""
    budget = load_budget(settings.latency_budget)
    declared = declared_stages(budget, settings.plugins)
    declared.check_wiring()
    knobs = KnobTable([*declared.components(), *GATEWAY_KNOBS])
    variants = VariantRegistry.from_file(settings.variants, knobs)
    holder: dict[str, GatewayCore] = {}

    async def setup(_app: FastAPI, resources: Resources) -> None:
        # Redis is not required for readiness: without it the gateway still answers (degraded,
        # with fallbacks), and a Redis outage must not take every gateway out of its Service.
        redis = resources.redis(settings.redis_url, required=False, cluster=settings.redis_cluster)
        store = OnlineStore(redis, cache_ttl_s=settings.read_cache_s)
        if settings.mode == "in_process":
            stages = in_process_stages(settings, store, budget, settings.service_name,
                                       settings.plugins)  # fmt: skip
            for models in stages.models:
                await resources.models(models, f"models_{models.slot}")
            clients: dict[str, StageClient] = {
                n: LocalStage(s) for n, s in stages.by_name().items()
            }
            if stages.indexer is not None:
                from shared.models.item_indexer import sync_forever

                resources.background(
                    sync_forever(
                        stages.indexer, settings.index_sync_s, settings.index_sync_lookback_s
                    )
                )
        else:
            stages = declared
            clients = _remote_clients(settings, resources, stages, budget)
        deps = StepDeps(store, clients, declared.filtering, stages.hydrated(),
                        KnobTable(GATEWAY_KNOBS))  # fmt: skip
        deps.remote = partial(_elsewhere, resources, budget)
        # An emptied or rebuilding store answers every read, with nothing: say so per answer.
        deps.store_watch = StoreWatch(redis, settings.store_check_s)
        await deps.store_watch.start()
        resources.on_close(deps.store_watch.stop)
        resources.readiness.add("store", _store_check(deps.store_watch), required=False)
        served = _served_log(settings, resources)
        holder["core"] = GatewayCore(
            Runner(PIPELINE, deps, budget, settings.service_name), variants, store.titles,
            served.log if served is not None else None, partial(last_resort, deps),
            _rollouts(settings, resources, deps, budget, served),
        )  # fmt: skip
        resources.background(_refresh_forever(deps, settings.trending_refresh_s))
        warm = GatewayWarmUp(deps, settings.warmup_connections, settings.warmup_timeout_s,
                             settings.warmup_give_up_s, before=store.preload_catalog)  # fmt: skip
        resources.readiness.add("warm_up", warm.check)
        resources.on_close(warm.stop)
        warm.start()

    app = create_app(settings, setup, description=__doc__ or "")
    app.add_fast_route(recommendations_route(lambda: holder.get("core"), variants.names()))
    return app
