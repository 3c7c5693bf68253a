"""Ranking: the multi-task ONNX ranker over a batch of candidates."""

from __future__ import annotations

from fastapi import FastAPI

from services.ranking.settings import Settings
from shared.service import create_app


def build_app(settings: Settings) -> FastAPI:
    """The ranking app; connections open in the lifespan, not at import."""

    return create_app(settings, None, description=__doc__ or "")
