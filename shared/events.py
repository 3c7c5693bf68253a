"""The user-event schema shared by the events API, the stream workers and the offline store.

One pydantic model is the contract: the API validates client input with it, producers encode it
with :func:`encode_event`, and consumers decode with :func:`decode_event`, which raises
:class:`MalformedEventError` (a ``ValueError``) naming the bad field.

Context-dependent limits (batch size, how far in the future a timestamp may lie) are passed in the
pydantic validation context (see :func:`validation_context`), so the API can set them per service
while the errors keep their usual ``loc`` (e.g. ``["events", 3, "timestamp"]``).
"""

from __future__ import annotations

import base64
import math
import time
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

EventType = Literal["impression", "click", "watch", "like", "rate", "hide", "report"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

DEFAULT_MAX_BATCH = 1000
DEFAULT_MAX_FUTURE_S = 300.0

_Id = Field(min_length=1, max_length=256)


class MalformedEventError(ValueError):
    """A message is not a valid event; ``reason`` says which field and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"malformed event: {reason}")
        self.reason = reason


class Event(BaseModel):
    """One user action on one item.

    ``accepted_ts`` is not sent by clients: the events API stamps its own clock (epoch seconds)
    into every message it produces, so consumers can measure freshness (acceptance → effect).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = _Id
    user_id: str = _Id
    item_id: str = _Id
    type: EventType
    value: float | None = Field(default=None, description="dwell seconds (watch), rating (rate)")
    timestamp: float = Field(gt=0, description="when the action happened, epoch seconds")
    request_id: str | None = Field(default=None, max_length=256)
    position: int | None = Field(default=None, ge=0, description="rank in the served list")
    accepted_ts: float | None = Field(default=None, description="server clock at acceptance")

    @field_validator("value", "timestamp", "accepted_ts")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("timestamp")
    @classmethod
    def _not_far_future(cls, v: float, info: ValidationInfo) -> float:
        ctx = info.context or {}
        limit = ctx.get("max_future_s")
        if limit is not None and v > ctx.get("now", time.time()) + limit:
            raise ValueError(f"lies more than {limit:g} s in the future")
        return v


class EventBatch(BaseModel):
    """The body of ``POST /v1/events``: ``{"events": [...]}``, at most ``max_batch`` events."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1)

    @field_validator("events", mode="wrap")
    @classmethod
    def _bounded(cls, v: Any, handler: Any, info: ValidationInfo) -> list[Event]:
        # Checked before the items are validated, so an oversized batch costs nothing to reject.
        limit = (info.context or {}).get("max_batch", DEFAULT_MAX_BATCH)
        if isinstance(v, list) and len(v) > limit:
            raise ValueError(f"batch of {len(v)} events exceeds the limit of {limit}")
        result: list[Event] = handler(v)
        return result


def validation_context(
    max_batch: int = DEFAULT_MAX_BATCH,
    max_future_s: float | None = DEFAULT_MAX_FUTURE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The context for ``EventBatch.model_validate(..., context=...)`` with the API's limits."""
    return {"max_batch": max_batch, "max_future_s": max_future_s, "now": now or time.time()}


def encode_event(event: Event, accepted_ts: float | None = None) -> bytes:
    """The Kafka message value of an event (compact JSON, unset optional fields omitted).

    ``accepted_ts``, when given, replaces the event's own (the events API stamps its clock).
    """
    # The field values themselves (pydantic keeps them in __dict__): a third of model_dump's cost.
    payload = {k: v for k, v in event.__dict__.items() if v is not None}
    if accepted_ts is not None:
        payload["accepted_ts"] = accepted_ts
    return orjson.dumps(payload)


def decode_event(data: bytes | None, max_future_s: float | None = None) -> Event:
    """Parse a Kafka message value; raises MalformedEventError naming the bad field.

    With ``max_future_s`` a timestamp later than now + that is rejected, as the events API
    does (consumers apply it to messages other producers wrote).
    """
    if not data:
        raise MalformedEventError("message: empty value")
    context = None if max_future_s is None else {"max_future_s": max_future_s}
    try:
        return Event.model_validate_json(data, context=context)
    except ValidationError as exc:
        raise MalformedEventError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """First error of a ValidationError as 'field: message' (enough to diagnose a dead letter)."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "message"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{more}"


def encode_dead_letter(
    value: bytes | None,
    reason: str,
    *,
    source: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None = None,
) -> bytes:
    """The ``events.dlq`` message for a record that could not be used.

    JSON with the reason, which consumer gave up (``source``, e.g. its group id), where the
    record was (topic, partition, offset), its key and value as text (undecodable bytes replaced)
    and the exact value bytes in base64, so it can be inspected and replayed.
    """
    raw = value or b""
    return orjson.dumps(
        {
            "reason": reason,
            "source": source,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key.decode("utf-8", "replace") if key is not None else None,
            "value": raw.decode("utf-8", "replace"),
            "value_b64": base64.b64encode(raw).decode("ascii"),
            "failed_ts": time.time(),
        }
    )
