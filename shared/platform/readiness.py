"""Readiness checks: named probes of a service's dependencies, each with a reason."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from shared.platform.metrics import DEPENDENCY_UP

ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]


class Readiness:
    """Named readiness checks; a service is ready when every required check passes.

    Checks run on each /readyz call, so a service becomes ready again by itself once a
    dependency returns (no restart, no crash loop).
    """

    def __init__(self, service: str, timeout_s: float = 1.0) -> None:
        self.service = service
        self.timeout_s = timeout_s
        self._checks: dict[str, tuple[ReadinessCheck, bool]] = {}

    def add(self, name: str, check: ReadinessCheck, required: bool = True) -> None:
        """Register a check; optional checks are reported but do not block readiness."""
        self._checks[name] = (check, required)

    async def _run_one(self, name: str, check: ReadinessCheck) -> tuple[bool, str]:
        try:
            ok, reason = await asyncio.wait_for(check(), self.timeout_s)
        except TimeoutError:
            ok, reason = False, f"{name} check timed out after {self.timeout_s}s"
        except Exception as exc:  # a broken check must report, not crash the probe
            ok, reason = False, f"{name} check failed: {exc!r}"
        DEPENDENCY_UP.labels(self.service, name).set(1 if ok else 0)
        return ok, reason

    async def evaluate(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Run all checks concurrently; return (ready, {name: {ok, required, reason}})."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_one(n, self._checks[n][0]) for n in names))
        details = {
            name: {"ok": ok, "required": self._checks[name][1], "reason": reason}
            for name, (ok, reason) in zip(names, results, strict=True)
        }
        ready = all(d["ok"] for d in details.values() if d["required"])
        return ready, details
