"""Ranking: the multi-task ONNX ranker over a batch of candidates."""

from __future__ import annotations

from fastapi import FastAPI

from services.ranking.ranker import MultiTaskRanker, warm_up_ranker
from services.ranking.routes import rank
from services.ranking.settings import Settings
from shared.dependencies import Dependencies
from shared.model_loading import holder_for
from shared.service import create_app

MODEL_PARTS = ("ranker",)


def build_app(settings: Settings) -> FastAPI:
    """The ranking app; the model loads (schema check, warm-up) in the lifespan."""

    async def setup(app: FastAPI, deps: Dependencies) -> None:
        holder = holder_for(settings, MODEL_PARTS, prepare=warm_up_ranker)
        await deps.models(holder)
        app.state.ranker = MultiTaskRanker(holder.require)

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(rank.router)
    return app
