"""Turns a request body into an EventBatch, or into 422 errors naming the field and index."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from shared.events import DEFAULT_MIN_TIMESTAMP, EventBatch, validation_context


class InvalidBatchError(ValueError):
    """The body is not a valid batch; ``errors`` are FastAPI-style ``{loc, msg, type}`` dicts."""

    def __init__(self, errors: list[dict[str, Any]], n_events: int) -> None:
        super().__init__(f"{len(errors)} validation error(s)")
        self.errors = errors
        self.n_events = n_events


class BatchValidator:
    """Validates batches against the service's limits (size, earliest timestamp, clock skew)."""

    def __init__(
        self, max_batch: int, max_future_s: float, min_timestamp: float = DEFAULT_MIN_TIMESTAMP
    ) -> None:
        self.max_batch = max_batch
        self.max_future_s = max_future_s
        self.min_timestamp = min_timestamp

    def parse(self, body: bytes) -> EventBatch:
        """Parse and validate a JSON body; raise InvalidBatchError."""
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            err = {"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}
            raise InvalidBatchError([err], 0) from None
        ctx = validation_context(
            self.max_batch, self.max_future_s, min_timestamp=self.min_timestamp
        )
        try:
            return EventBatch.model_validate(raw, context=ctx)
        except ValidationError as exc:
            raise InvalidBatchError(_errors(exc), _count(raw)) from None


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    """FastAPI's 422 shape, without echoing the input back (a bad batch can be large)."""
    return [
        {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _count(raw: Any) -> int:
    events = raw.get("events") if isinstance(raw, dict) else None
    return len(events) if isinstance(events, list) else 0
