"""AssignmentFollower: the gateway's copy of the controller's active rollouts, polled.

Polling (default every second) keeps the controller off the request path and makes a
rollback reach every gateway within one poll: the controller drops the assignment, the next
poll sees it, and the next request goes to production. When the controller cannot be
reached the last assignments stay in force for ``stale_after_s`` (a controller restart must
not flap the split), then the gateway serves production only: a canary nobody watches is
not left running. Both are visible: ``cascade_rollout_assignments_age_seconds`` and the
readiness detail.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from services.gateway.rollouts import metrics
from services.gateway.rollouts.assignment import Assignments
from shared.platform.http_client import ServiceClient, UpstreamError

log = logging.getLogger(__name__)
PATH = "/v1/assignments"


class AssignmentFollower:
    """Polls ``GET /v1/assignments`` of the controller and holds what it answered."""

    def __init__(
        self,
        client: ServiceClient | None,
        poll_s: float = 1.0,
        stale_after_s: float = 30.0,
        forget_after_s: float = 600.0,
    ) -> None:
        self.client = client
        self.poll_s = poll_s
        self.stale_after_s = stale_after_s
        self.forget_after_s = forget_after_s
        self._held = Assignments()
        self._heard = 0.0  # monotonic time of the last good answer (0: never)
        self._error = "not polled yet" if client is not None else "no controller configured"
        self._ended: dict[str, float] = {}  # rollout id -> when it left the assignments
        self._decode = msgspec.json.Decoder(Assignments)

    def current(self) -> Assignments:
        """The assignments in force now (none once they are stale)."""
        if self._held.rollouts and time.monotonic() - self._heard > self.stale_after_s:
            log.warning("rollout assignments are stale: serving production only",
                        extra={"error": self._error})  # fmt: skip
            self._replace(Assignments(version=self._held.version))
        return self._held

    def apply(self, assignments: Assignments) -> None:
        """Take a new set of assignments (what a poll does; tests call it directly)."""
        self._heard = time.monotonic()
        self._error = ""
        if assignments != self._held:
            self._replace(assignments)

    def _replace(self, new: Assignments) -> None:
        now = time.monotonic()
        active = {a.rollout_id for a in new.rollouts}
        for old in self._held.rollouts:
            if old.rollout_id not in active:
                self._ended[old.rollout_id] = now
        for a in new.rollouts:
            self._ended.pop(a.rollout_id, None)
            metrics.ARM_SHARE.labels(a.rollout_id, "canary").set(a.canary_share)
            metrics.ARM_SHARE.labels(a.rollout_id, "shadow").set(a.shadow_share)
        for rollout_id in active ^ {a.rollout_id for a in self._held.rollouts}:
            log.info("rollout assignment changed",
                     extra={"rollout": rollout_id, "active": rollout_id in active})  # fmt: skip
        self._held = new
        metrics.ASSIGNMENTS_VERSION.set(new.version)

    async def poll_once(self) -> None:
        """One poll; a failure keeps the last assignments (until they are stale)."""
        if self.client is None:
            return
        try:
            _ctype, body = await self.client.request("GET", PATH, timeout_s=min(self.poll_s, 2.0))
            self.apply(self._decode.decode(body))
        except (UpstreamError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            self._error = str(exc)[:300]
        finally:
            self._forget_ended()
            if self._heard:
                metrics.ASSIGNMENTS_AGE.set(time.monotonic() - self._heard)

    def _forget_ended(self) -> None:
        """Drop the series of rollouts that ended long enough ago to have been scraped."""
        now = time.monotonic()
        for rollout_id, ended in list(self._ended.items()):
            if now - ended >= self.forget_after_s:
                metrics.forget(rollout_id)
                del self._ended[rollout_id]

    async def follow_forever(self) -> None:
        """Poll every ``poll_s`` until cancelled."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_s)

    async def check(self) -> tuple[bool, str]:
        """Readiness detail (never required: the gateway serves production without it)."""
        if self.client is None:
            return True, self._error
        if self._error:
            return False, f"controller: {self._error}"
        names = ", ".join(a.rollout_id for a in self._held.rollouts) or "none"
        return True, f"assignments v{self._held.version}: {names}"
