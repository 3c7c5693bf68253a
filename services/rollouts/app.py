"""Rollout controller: canary and shadow rollouts of registered models, judged as they run.

``POST /v1/rollouts`` starts one from a plan; the controller moves the MLflow aliases,
publishes the traffic split the gateways follow (``GET /v1/assignments``), judges every
step from the services' metrics and the exposure log, and promotes or rolls back. Its state
is in SQLite: a restarted controller resumes where it stopped. docs/rollouts.md.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.rollouts.controller import Controller
from services.rollouts.exposure import ExposureLog
from services.rollouts.metrics_source import metrics_source
from services.rollouts.registry_ops import RegistryOps
from services.rollouts.routes import rollouts
from services.rollouts.settings import Settings
from services.rollouts.store import RolloutStore
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app


def build_app(settings: Settings) -> Service:
    """The controller; its store opens and its loop starts in the lifespan."""

    async def setup(app: FastAPI, resources: Resources) -> None:
        store = RolloutStore(settings.state_path)
        exposure = ExposureLog(settings)
        source = metrics_source(settings.prometheus_url, settings.targets())
        registry = RegistryOps(settings.mlflow_uri, settings.cache_dir)
        controller = Controller(store, registry, source, exposure, settings.warm_timeout_s)
        app.state.controller = controller

        async def close() -> None:
            await source.aclose()
            await asyncio.to_thread(exposure.close)
            store.close()

        resources.on_close(close)

        async def registry_check() -> tuple[bool, str]:
            return await asyncio.to_thread(registry.reachable)

        # Not required: without MLflow the controller still answers, and holds its rollouts.
        resources.readiness.add("registry", registry_check, required=False)

        async def exposure_check() -> tuple[bool, str]:
            return exposure.healthy()

        resources.readiness.add("exposure_log", exposure_check, required=False)
        resources.background(controller.run_forever(settings.tick_s))

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(rollouts.router)
    return app
