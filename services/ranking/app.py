"""Ranking: the multi-task ONNX ranker over a batch of candidates, per variant."""

from __future__ import annotations

from fastapi import FastAPI

from services.ranking.settings import Settings
from services.ranking.stage import SLOT, RankingStage
from services.ranking.warmup import warm_up_ranker
from shared.models.model_set import ModelSet
from shared.models.settings import model_set_for
from shared.pipeline.stage import stage_route
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app


def ranker_models(settings: Settings, service: str) -> ModelSet:
    """The ranker versions this process holds (schema check and warm-up before each goes live)."""
    return model_set_for(settings, SLOT, ("ranker",), service, prepare=warm_up_ranker)


def build_app(settings: Settings) -> Service:
    """The ranking app; models load (schema check, warm-up) in the lifespan."""
    models = ranker_models(settings, settings.service_name)
    stage = RankingStage(models)

    async def setup(_app: FastAPI, resources: Resources) -> None:
        await resources.models(models)

    app = create_app(settings, setup, description=__doc__ or "")
    app.add_fast_route(stage_route(stage))
    return app
