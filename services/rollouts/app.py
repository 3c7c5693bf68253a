"""Rollout controller: canary and shadow rollouts of registered models, judged as they run.

``POST /v1/rollouts`` starts one from a plan; the controller moves the MLflow aliases,
publishes the traffic split the gateways follow (``GET /v1/assignments``), judges every
step from the services' metrics and the exposure log, and promotes or rolls back. It also
runs A/B and interleaving experiments (``POST /v1/experiments``), published in the same
document. Its state is in SQLite: a restarted controller resumes where it stopped.
docs/rollouts.md, docs/experiments.md.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.rollouts.controller import Controller
from services.rollouts.experiments.book import ExperimentBook
from services.rollouts.experiments.declarations import GatewayDeclarations
from services.rollouts.experiments.declared_file import load_declared
from services.rollouts.experiments.store import ExperimentStore
from services.rollouts.experiments.watch import ExperimentWatch, LookStore
from services.rollouts.exposure import ExposureLog
from services.rollouts.metrics_source import metrics_source
from services.rollouts.registry_ops import RegistryOps
from services.rollouts.routes import experiments, rollouts
from services.rollouts.settings import Settings
from services.rollouts.store import RolloutStore
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app


def build_app(settings: Settings) -> Service:
    """The controller; its store opens and its loop starts in the lifespan.

    The gateway's declarations and the declared experiments are read here, before anything
    starts: a bad file stops the controller with one line naming it."""
    declarations = GatewayDeclarations.load(
        settings.variants, settings.latency_budget, settings.plugins
    )
    declared = load_declared(settings.experiments_file)

    async def setup(app: FastAPI, resources: Resources) -> None:
        store = RolloutStore(settings.state_path)
        experiment_store = ExperimentStore(settings.state_path)  # same file, its own tables
        exposure = ExposureLog(settings)
        source = metrics_source(settings.prometheus_url, settings.targets())
        registry = RegistryOps(settings.mlflow_uri, settings.cache_dir)
        book = ExperimentBook(experiment_store, store, declarations, registry)
        book.declare(declared)  # created on the first tick, unless already there
        looks = LookStore(settings.state_path)

        def weights_changed(experiment_id: str) -> float | None:
            changes = [d.ts for d in experiment_store.history(experiment_id)
                       if d.decision == "weights_changed"]  # fmt: skip
            return changes[-1] if changes else None

        book.watch = ExperimentWatch(exposure, looks, settings.experiment_look_s,
                                     settings.experiment_pre_period_s,
                                     weights_changed)  # fmt: skip
        controller = Controller(
            store, registry, source, exposure, settings.warm_timeout_s, experiments=book
        )
        app.state.controller = controller

        async def close() -> None:
            await source.aclose()
            await asyncio.to_thread(exposure.close)
            store.close()
            experiment_store.close()
            looks.close()

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
    app.include_router(experiments.router)
    return app
