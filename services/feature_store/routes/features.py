"""Feature reads: one user, or a batch of items (columnar JSON)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.feature_store.schemas import ItemFeaturesRequest, NowQuery, UserIdPath
from shared.online_store.reader import OnlineStore
from shared.online_store.wire import item_batch_to_json, user_state_to_json
from shared.platform.metrics import stage_timer

router = APIRouter(tags=["features"])


@router.get("/v1/users/{user_id}/features")
async def user_features(request: Request, user_id: UserIdPath, now: NowQuery = None) -> Any:
    """Profile, history, seen/blocked sets, fatigue counts and features of a user."""
    store: OnlineStore = request.app.state.store
    with stage_timer("feature_store", "user"):
        state = await store.get_user(user_id, now or time.time())
    return user_state_to_json(state)


@router.post("/v1/items/features")
async def item_features(request: Request, body: ItemFeaturesRequest) -> Any:
    """Catalog attributes, windowed counters and CTR of the items, in the order asked."""
    limit = request.app.state.settings.max_items
    if len(body.item_ids) > limit:
        detail = [
            {
                "loc": ["body", "item_ids"],
                "msg": f"{len(body.item_ids)} item ids exceed the limit of {limit}",
                "type": "too_long",
            }
        ]
        return JSONResponse({"detail": detail}, status_code=422)
    store: OnlineStore = request.app.state.store
    with stage_timer("feature_store", "items"):
        batch = await store.get_items(body.item_ids, body.now or time.time())
    return item_batch_to_json(batch)
