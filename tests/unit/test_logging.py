"""Structured logs: one JSON object per line with service, level, message and request id."""

from __future__ import annotations

import io
import json
import logging

from shared.platform.logging import JsonFormatter, request_id_var


def _emit(msg: str, **extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("unit-svc"))
    logger = logging.getLogger(f"test.{msg}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning(msg, extra=extra)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    parsed: dict[str, object] = json.loads(lines[0])
    return parsed


def test_json_line_fields_and_extras() -> None:
    record = _emit("hello", batch=3)
    assert record["service"] == "unit-svc" and record["level"] == "WARNING"
    assert record["msg"] == "hello" and record["batch"] == 3
    assert "request_id" not in record


def test_request_id_is_attached() -> None:
    token = request_id_var.set("req-42")
    try:
        assert _emit("with-id")["request_id"] == "req-42"
    finally:
        request_id_var.reset(token)
