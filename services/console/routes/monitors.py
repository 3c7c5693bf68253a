"""Monitors: feature and score drift per variant and training-serving skew, read from the
ranking service's ``GET /v1/monitors``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.console.routes.deps import ConsoleDep

router = APIRouter(prefix="/api", tags=["monitors"])


@router.get("/monitors", responses={422: {}})
async def monitors(
    console: ConsoleDep,
    service: Annotated[
        str, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="the ranking service to read")
    ] = "ranking",
) -> dict[str, Any]:
    """PSI per feature and head with its status, per variant; a dead service is unavailable."""
    return await console.monitors(service)
