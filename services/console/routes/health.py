"""Health: every service and dependency, consumers, freshness, models and variants."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.console.routes.deps import ConsoleDep

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
async def health(console: ConsoleDep) -> dict[str, Any]:
    """Probed now: readiness and dependencies; from the latest scrape: everything else."""
    return await console.health()
