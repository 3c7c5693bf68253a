"""The console's one page (the sections are drawn by its scripts)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(tags=["pages"])
INDEX = Path(__file__).resolve().parents[1] / "static" / "index.html"


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The console: Try it, Health, Monitors, Rollouts and experiments, Latency."""
    return FileResponse(INDEX, headers={"Cache-Control": "no-cache"})
