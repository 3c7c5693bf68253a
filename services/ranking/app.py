"""Ranking: the multi-task ONNX ranker over a batch of candidates."""

from __future__ import annotations

from fastapi import FastAPI

from services.ranking.ranker import MultiTaskRanker, warm_up_ranker
from services.ranking.routes import rank
from services.ranking.settings import Settings
from shared.dependencies import Dependencies
from shared.model_loading import ModelHolder, locator_for
from shared.service import create_app

MODEL_PARTS = ("ranker",)


def build_app(settings: Settings) -> FastAPI:
    """The ranking app; the model loads (schema check, warm-up) in the lifespan."""

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        locator = locator_for(
            settings.models_dir, settings.mlflow_uri, settings.model_alias,
            settings.model_cache_dir, MODEL_PARTS,
        )  # fmt: skip
        holder = ModelHolder(locator, MODEL_PARTS, settings.model_poll_s, prepare=warm_up_ranker)
        deps.readiness.add("models", holder.check)
        deps.on_close(holder.stop)
        await holder.start()
        app.state.ranker = MultiTaskRanker(holder.require)

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(rank.router)
    return app
