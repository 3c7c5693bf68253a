"""Ranking: the multi-task ONNX ranker over a batch of candidates, per variant."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from services.ranking.monitors import routes as monitor_routes
from services.ranking.monitors.metrics import export
from services.ranking.monitors.monitor import RankerMonitor
from services.ranking.settings import Settings
from services.ranking.stage import SLOT, RankingStage
from services.ranking.warmup import warm_up_ranker
from shared.models.model_set import ModelSet
from shared.models.settings import model_set_for
from shared.pipeline.stage import stage_route
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app

if TYPE_CHECKING:
    from services.ranking.monitors.feature_log import FeatureLog


def ranker_models(settings: Settings, service: str) -> ModelSet:
    """The ranker versions this process holds (schema check and warm-up before each goes live)."""
    return model_set_for(settings, SLOT, ("ranker",), service, prepare=warm_up_ranker)


def _feature_log(settings: Settings, resources: Resources) -> FeatureLog | None:
    """The served-feature sample log for the skew job (best effort; off when every = 0).
    kafka-python loads only then: the stage itself needs no broker."""
    if settings.feature_log_every <= 0:
        return None
    from services.ranking.monitors.feature_log import FeatureLog
    from shared.stream.producer import register_producer

    producer = register_producer(resources, settings.kafka_bootstrap, required=False)
    return FeatureLog(producer, settings.feature_log_topic)


def build_app(settings: Settings) -> Service:
    """The ranking app; models load (schema check, warm-up) in the lifespan."""
    models = ranker_models(settings, settings.service_name)
    monitor = export(RankerMonitor(settings, settings.service_name))
    stage = RankingStage(models, monitor=monitor)

    async def setup(app: FastAPI, resources: Resources) -> None:
        app.state.monitor = monitor
        await resources.models(models)
        feature_log = _feature_log(settings, resources)
        if feature_log is not None:
            monitor.attach_log(feature_log.log)
            resources.background(feature_log.flush_forever())
            resources.on_close(feature_log.flush)

    app = create_app(settings, setup, description=__doc__ or "")
    app.add_fast_route(stage_route(stage))
    app.include_router(monitor_routes.router)
    return app
