"""Catalog writes (admin token needed) and the store-backed candidate lists (trending, popular,
fresh)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.feature_store.schemas import KQuery, NewItems, NowQuery
from shared.online_store.reader import OnlineStore
from shared.platform.auth import ADMIN, ADMIN_RESPONSES

router = APIRouter(tags=["catalog"])


def _pairs(pairs: list[tuple[str, float]]) -> dict[str, Any]:
    return {"items": [{"item_id": i, "score": s} for i, s in pairs]}


@router.post("/v1/items", dependencies=ADMIN, status_code=201, responses=ADMIN_RESPONSES)
async def add_items(request: Request, body: NewItems) -> Any:
    """Add or replace catalog entries (the index side is candidate_generation's)."""
    store: OnlineStore = request.app.state.store
    now = time.time()
    await store.put_items([item.record(now) for item in body.items])
    return {"added": [item.item_id for item in body.items]}


@router.get("/v1/trending")
async def trending(request: Request, k: KQuery = 100, now: NowQuery = None) -> Any:
    """Top items by time-decayed engagement."""
    store: OnlineStore = request.app.state.store
    return _pairs(await store.trending(k, now or time.time()))


@router.get("/v1/popular")
async def popular(
    request: Request,
    segment: Annotated[str, Query(min_length=1, max_length=64)] = "all",
    k: KQuery = 100,
    now: NowQuery = None,
) -> Any:
    """Top items by time-decayed engagement within a user segment (``all``: every user)."""
    store: OnlineStore = request.app.state.store
    return _pairs(await store.popular_in_segment(segment, k, now or time.time()))


@router.get("/v1/fresh")
async def fresh(
    request: Request,
    k: KQuery = 100,
    max_age_s: Annotated[float, Query(gt=0, le=365 * 86_400)] = 7 * 86_400,
    now: NowQuery = None,
) -> Any:
    """Items added within ``max_age_s``, newest first (score: added_ts)."""
    store: OnlineStore = request.app.state.store
    return _pairs(await store.fresh_items(k, now or time.time(), max_age_s))
