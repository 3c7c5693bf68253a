"""The user-event schema shared by the events API, the stream workers and the offline store.

One pydantic model is the contract: the API validates client input with it, producers encode it
with :func:`encode_event`, and consumers decode with :func:`decode_event`, which raises
:class:`MalformedEventError` (a ``ValueError``) naming the bad field.

Context-dependent limits (batch size, the earliest timestamp, how far in the future one may lie)
are passed in the pydantic validation context (see :func:`validation_context`), so the API can set
them per service while the errors keep their usual ``loc`` (e.g. ``["events", 3, "timestamp"]``).
Everywhere, consumers too: JSON's types as stated (no "3" for 3, no false for 0) and finite
numbers. Clients send :class:`ClientEvent`, bounded further: ``position`` within int32,
``value`` within its type's range (:data:`VALUE_RANGES`), no ``accepted_ts`` (the API's to stamp).
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.platform.contracts import EPOCH_MIN_S, INTEGRAL

EventType = Literal["impression", "click", "watch", "like", "rate", "hide", "report"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

DEFAULT_MAX_BATCH = 1000
DEFAULT_MAX_FUTURE_S = 300.0
DEFAULT_MIN_TIMESTAMP = EPOCH_MIN_S  # the events API's default earliest timestamp (2000-01-01)
INT32_MAX = 2**31 - 1  # positions are stored as int32 (the offline sink's Parquet column)

# The value each type may carry (closed range); a type not listed carries values in DEFAULT_RANGE.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "rate": (0.0, 10.0),  # a rating (MovieLens: 1-5; the like threshold lies within)
    "watch": (0.0, 86_400.0),  # dwell seconds: at most a day
}
DEFAULT_RANGE = (0.0, 86_400.0)

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

    # strict: JSON's types as the schema states them; no NaN or Infinity in any float.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)

    event_id: str = _Id
    user_id: str = _Id
    item_id: str = _Id
    type: EventType
    value: float | None = Field(default=None, description="dwell seconds (watch), rating (rate)")
    timestamp: float = Field(gt=0, description="when the action happened, epoch seconds")
    request_id: str | None = Field(default=None, max_length=256)
    position: Annotated[int, Field(ge=0), INTEGRAL] | None = Field(
        default=None, description="rank in the served list"
    )
    accepted_ts: float | None = Field(default=None, description="server clock at acceptance")

    @field_validator("timestamp")
    @classmethod
    def _within_window(cls, v: float, info: ValidationInfo) -> float:
        ctx = info.context or {}
        earliest = ctx.get("min_timestamp")
        if earliest is not None and v < earliest:
            raise ValueError(f"lies before the earliest accepted timestamp {earliest:.0f}")
        limit = ctx.get("max_future_s")
        if limit is not None and v > ctx.get("now", time.time()) + limit:
            raise ValueError(f"lies more than {limit:g} s in the future")
        return v


def value_ranges_schema(schema: dict[str, Any]) -> None:
    """The per-type value ranges in JSON Schema (``if type is T then value within T's range``)."""
    low, high = DEFAULT_RANGE
    rules: list[dict[str, Any]] = [
        {
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"properties": {"value": {"minimum": lo, "maximum": hi}}},
        }
        for kind, (lo, hi) in VALUE_RANGES.items()
    ]
    rules.append(
        {
            "if": {
                "properties": {"type": {"enum": [t for t in EVENT_TYPES if t not in VALUE_RANGES]}}
            },
            "then": {"properties": {"value": {"minimum": low, "maximum": high}}},
        }
    )
    schema["allOf"] = rules


class ClientEvent(Event):
    """An event as a client sends it to the events API, with the bounds that keep the stores
    sound: ``value`` within its type's range, ``position`` within int32, and no
    ``accepted_ts`` (the API stamps it; a client's own is refused, naming the field).

    Consumers decode :class:`Event`, without these ranges: a record another producer wrote
    that decodes but breaks a handler (an overflowing rating, a position Parquet cannot
    store) is retried, then dead-lettered with its reason (``shared.stream``)."""

    model_config = ConfigDict(json_schema_extra=value_ranges_schema)

    position: Annotated[int, Field(ge=0, le=INT32_MAX), INTEGRAL] | None = Field(
        default=None, description="rank in the served list"
    )
    accepted_ts: None = Field(default=None, description="stamped by the server: do not send")

    @field_validator("accepted_ts", mode="before")
    @classmethod
    def _server_stamped(cls, v: Any) -> None:
        if v is not None:
            raise ValueError("is stamped by the events API; do not send it")
        return None

    @model_validator(mode="after")
    def _value_in_range(self) -> ClientEvent:
        low, high = VALUE_RANGES.get(self.type, DEFAULT_RANGE)
        if self.value is not None and not low <= self.value <= high:
            raise ValueError(f"value: {self.value:g} outside [{low:g}, {high:g}] for {self.type}")
        return self


class EventBatch(BaseModel):
    """The body of ``POST /v1/events``: ``{"events": [...]}``, at most ``max_batch`` events."""

    model_config = ConfigDict(extra="forbid")

    events: list[ClientEvent] = Field(min_length=1)

    @field_validator("events", mode="wrap")
    @classmethod
    def _bounded(cls, v: Any, handler: Any, info: ValidationInfo) -> list[ClientEvent]:
        # Checked before the items are validated, so an oversized batch costs nothing to reject.
        limit = (info.context or {}).get("max_batch", DEFAULT_MAX_BATCH)
        if isinstance(v, list) and len(v) > limit:
            raise ValueError(f"batch of {len(v)} events exceeds the limit of {limit}")
        result: list[ClientEvent] = handler(v)
        return result


def validation_context(
    max_batch: int = DEFAULT_MAX_BATCH,
    max_future_s: float | None = DEFAULT_MAX_FUTURE_S,
    now: float | None = None,
    min_timestamp: float | None = DEFAULT_MIN_TIMESTAMP,
) -> dict[str, Any]:
    """The context for ``EventBatch.model_validate(..., context=...)`` with the API's limits."""
    return {
        "max_batch": max_batch,
        "max_future_s": max_future_s,
        "now": now or time.time(),
        "min_timestamp": min_timestamp,
    }


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
