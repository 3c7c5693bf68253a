"""Structured logging: one JSON object per line, carrying the service name and request id.

The formatting is python-json-logger's; this module only adds the fields every Cascade line
has (``ts``, ``level``, ``service``, ``logger``, ``msg`` and the request id when one is bound).
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid
from typing import Any

import orjson
from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def _dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


class JsonFormatter(_LibraryJsonFormatter):
    """JSON lines with the service name and the bound request id; ``extra=`` fields kept."""

    def __init__(self, service: str) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={
                "levelname": "level",
                "name": "logger",
                "message": "msg",
                "exc_info": "exc",
            },
            static_fields={"service": service},
            json_serializer=_dumps,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """The library's fields, a rounded timestamp first, and the request id when bound."""
        log_data["ts"] = round(record.created, 3)
        super().add_fields(log_data, record, message_dict)
        rid = request_id_var.get()
        if rid:
            log_data["request_id"] = rid


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Route the root logger (and uvicorn's) to stderr, as JSON lines unless told otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Access logs are replaced by our own request metrics; kafka-python is chatty at INFO.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    logging.Formatter.converter = time.gmtime
