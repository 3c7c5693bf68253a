"""Try it: one explained list from the gateway, and events posted through the events API."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.console.routes.common import passed_on, unanswered
from services.console.routes.deps import Authorization, ConsoleDep
from services.console.tryit import view
from shared.events import INT32_MAX, EventType, value_ranges_schema
from shared.frame.codec import ID_PATTERN
from shared.platform.contracts import INTEGRAL
from shared.platform.http_client import UpstreamError

router = APIRouter(prefix="/api", tags=["try it"])


@router.get("/recommendations", responses={422: {}, 502: {}})
async def recommendations(
    console: ConsoleDep,
    user_id: Annotated[str, Query(pattern=ID_PATTERN, description="the user to serve")],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    variant: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
) -> Response:
    """The gateway's list for ``user_id`` with its explain trace, shaped for the page."""
    params: dict[str, Any] = {"user_id": user_id, "k": k, "explain": "true"}
    if variant:
        params["variant"] = variant
    try:
        answer = await console.forward("gateway", "GET", "/v1/recommendations?" + urlencode(params))
    except UpstreamError as exc:
        return unanswered(exc)
    if not answer.ok or not isinstance(answer.data, dict):
        return passed_on(answer)
    return JSONResponse(view(answer.data, console.budget, answer.ms))


class EventIn(BaseModel):
    """An action of the user on an item, as the page sends it (the console stamps the rest)."""

    # The events API's bounds, stated here too (JSON's types, value ranges per type, int32).
    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, json_schema_extra=value_ranges_schema
    )

    user_id: str = Field(pattern=ID_PATTERN)
    item_id: str = Field(min_length=1, max_length=256)
    type: EventType
    value: float | None = None
    request_id: str | None = Field(default=None, max_length=256)
    position: Annotated[int, Field(ge=0, le=INT32_MAX), INTEGRAL] | None = None


@router.post("/events", status_code=202, responses={401: {}, 422: {}, 502: {}, 503: {}})
async def post_event(
    event: EventIn, console: ConsoleDep, authorization: Authorization = None
) -> Response:
    """Post one event through the events API (which answers 202 once the broker has it)."""
    record = {
        **event.model_dump(exclude_none=True),
        "event_id": f"console-{uuid.uuid4().hex}",
        "timestamp": time.time(),
    }
    try:
        answer = await console.forward(
            "events", "POST", "/v1/events", {"events": [record]}, authorization
        )
    except UpstreamError as exc:
        return unanswered(exc)
    return passed_on(answer)
