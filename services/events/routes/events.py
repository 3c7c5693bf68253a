"""POST /v1/events: translate HTTP to a validated batch and a publish, nothing more."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.events.metrics import EVENTS_REJECTED
from services.events.publisher import BrokerUnavailableError, EventPublisher
from services.events.validation import BatchValidator, InvalidBatchError
from shared.events import ClientEvent
from shared.platform.auth import ADMIN_RESPONSES, guard_of


class Accepted(BaseModel):
    """Answer of a batch the broker acknowledged in full."""

    accepted: int


class BodyTooLargeError(Exception):
    """The body passed the limit (its declared length, or the bytes read so far)."""


def body_schema(min_timestamp: float) -> dict[str, Any]:
    """The JSON Schema of the body, with this service's earliest timestamp."""
    event = ClientEvent.model_json_schema()
    props = event["properties"] = dict(event["properties"])
    props["timestamp"] = {**props["timestamp"], "minimum": min_timestamp}
    props["timestamp"].pop("exclusiveMinimum", None)
    return {
        "type": "object",
        "required": ["events"],
        "properties": {"events": {"type": "array", "minItems": 1, "items": event}},
        "additionalProperties": False,
    }


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, read as it streams in and abandoned as soon as it passes ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def build_router(min_timestamp: float) -> APIRouter:
    """The events route, its documented body carrying the service's timestamp bound."""
    router = APIRouter(tags=["events"])
    body = {
        "required": True,
        "content": {"application/json": {"schema": body_schema(min_timestamp)}},
    }
    router.add_api_route(
        "/v1/events",
        post_events,
        methods=["POST"],
        status_code=202,
        response_model=Accepted,
        openapi_extra={"requestBody": body},
        responses={
            **ADMIN_RESPONSES,
            413: {"description": "the body is larger than max_body_bytes"},
            422: {"description": "a field is invalid (loc names the event and field)"},
            503: {"description": "broker unavailable; retry after"},
        },
    )
    return router


async def post_events(request: Request) -> Any:
    """Accept a batch of events: 202 only after the broker acknowledged every one (acks=all)."""
    settings = request.app.state.settings
    if settings.require_token:  # clients post events; a token only where the operator wants one
        guard_of(request).check(request.headers.get("authorization"))
    try:
        body = await read_limited(request, settings.max_body_bytes)
    except BodyTooLargeError:
        EVENTS_REJECTED.labels("too_large").inc()
        detail = f"body exceeds {settings.max_body_bytes} bytes"
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
