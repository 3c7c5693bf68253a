"""Readiness: required vs optional checks, reasons, and checks that hang or raise."""

from __future__ import annotations

import asyncio

from shared.platform.readiness import Readiness


async def _ok() -> tuple[bool, str]:
    return True, "ok"


async def _down() -> tuple[bool, str]:
    return False, "redis unreachable: connection refused"


async def _hang() -> tuple[bool, str]:
    await asyncio.sleep(10)
    return True, "never"


async def _raise() -> tuple[bool, str]:
    raise RuntimeError("bug in check")


async def test_required_failure_makes_not_ready_with_reason() -> None:
    r = Readiness("unit")
    r.add("model", _ok)
    r.add("redis", _down)
    ready, details = await r.evaluate()
    assert not ready
    assert details["redis"] == {
        "ok": False,
        "required": True,
        "reason": "redis unreachable: connection refused",
    }


async def test_optional_failure_keeps_ready() -> None:
    r = Readiness("unit")
    r.add("kafka", _down, required=False)
    ready, details = await r.evaluate()
    assert ready and details["kafka"]["ok"] is False


async def test_hanging_and_raising_checks_report_instead_of_blocking() -> None:
    r = Readiness("unit", timeout_s=0.1)
    r.add("slow", _hang)
    r.add("buggy", _raise)
    ready, details = await asyncio.wait_for(r.evaluate(), 2)
    assert not ready
    assert "timed out" in details["slow"]["reason"]
    assert "bug in check" in details["buggy"]["reason"]
