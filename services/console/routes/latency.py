"""Latency: per-step p50/p99 over a recent window against the latency budget."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.console.routes.deps import ConsoleDep

router = APIRouter(prefix="/api", tags=["latency"])


@router.get("/latency", responses={422: {}})
async def latency(
    console: ConsoleDep,
    window_s: Annotated[float, Query(ge=10, le=86_400, description="seconds back")] = 300.0,
) -> dict[str, Any]:
    """The request, each step and each source against their budget entries."""
    return await console.latency(min(window_s, console.settings.window_s))
