"""POST /v1/events: translate HTTP to a validated batch and a publish, nothing more."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.events.metrics import EVENTS_REJECTED
from services.events.publisher import BrokerUnavailableError, EventPublisher
from services.events.validation import BatchValidator, InvalidBatchError
from shared.events import Event
from shared.platform.auth import ADMIN_RESPONSES, guard_of

router = APIRouter(tags=["events"])

_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["events"],
    "properties": {"events": {"type": "array", "minItems": 1, "items": Event.model_json_schema()}},
}


class Accepted(BaseModel):
    """Answer of a batch the broker acknowledged in full."""

    accepted: int


@router.post(
    "/v1/events",
    status_code=202,
    response_model=Accepted,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
    },
    responses={
        **ADMIN_RESPONSES,
        413: {},
        422: {},
        503: {"description": "broker unavailable; retry after"},
    },
)
async def post_events(request: Request) -> Any:
    """Accept a batch of events: 202 only after the broker acknowledged every one (acks=all)."""
    settings = request.app.state.settings
    if settings.require_token:  # clients post events; a token only where the operator wants one
        guard_of(request).check(request.headers.get("authorization"))
    body = await request.body()
    if len(body) > settings.max_body_bytes:
        EVENTS_REJECTED.labels("too_large").inc()
        detail = f"body of {len(body)} bytes exceeds {settings.max_body_bytes}"
        return JSONResponse({"detail": detail}, status_code=413)
    validator: BatchValidator = request.app.state.validator
    publisher: EventPublisher = request.app.state.publisher
    try:
        batch = validator.parse(body)
        accepted = await publisher.publish(batch.events)
    except InvalidBatchError as exc:
        EVENTS_REJECTED.labels("invalid").inc(max(exc.n_events, 1))
        return JSONResponse({"detail": exc.errors}, status_code=422)
    except BrokerUnavailableError as exc:
        EVENTS_REJECTED.labels("unavailable").inc(len(batch.events))
        headers = {"Retry-After": str(settings.retry_after_s)}
        return JSONResponse({"detail": str(exc)}, status_code=503, headers=headers)
    return Accepted(accepted=accepted)
