"""GatewayRollouts: the split, the canary's production re-run, the metrics, the shadow.

The route asks ``decide`` which variant a request runs under, runs it through ``serve``
(which re-runs it under production when the canary's model failed it: the user gets a
production answer, not a degraded one, and the rollout is charged a canary error), then
hands the finished request to ``after`` (metrics by arm, the shadow). With no rollout in
force ``decide`` returns the base variant and the rest does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from services.gateway.experiments import metrics as experiment_metrics
from services.gateway.request_state import RequestState
from services.gateway.rollouts import metrics
from services.gateway.rollouts.canary import slot_failure
from services.gateway.rollouts.follower import AssignmentFollower
from services.gateway.rollouts.shadow import ShadowRunner
from services.gateway.rollouts.split import Decision, decide
from shared.pipeline.context import VariantSpec

log = logging.getLogger(__name__)
RunRequest = Callable[[RequestState], Awaitable[None]]
Remember = Callable[[str, dict[str, str]], Awaitable[None]]


class GatewayRollouts:
    """The gateway's part of every active rollout."""

    def __init__(self, follower: AssignmentFollower, shadow: ShadowRunner | None,
                 remember: Remember | None = None) -> None:  # fmt: skip
        self.follower = follower
        self.shadow = shadow
        self.remember = remember  # keeps a user's first experiment arms (the online store)
        self._writes: set[asyncio.Task[None]] = set()

    def decide(self, user_id: str, request_id: str, base: VariantSpec) -> Decision:
        """The variant this request runs under (``base`` when no rollout is in force)."""
        return decide(self.follower.current(), user_id, request_id, base)

    async def serve(self, req: RequestState, decision: Decision, run: RunRequest,
                    base: VariantSpec) -> RequestState:  # fmt: skip
        """Run ``req``; a canary whose model failed it is re-run under ``base``.

        Returns the request that answers (``canary_failure`` says why when it was re-run).
        """
        await run(req)
        if decision.canary:
            failure = slot_failure(req, decision.canary_slots)
            if failure is not None:
                log.warning("canary failed a request: production answers",
                            extra={"arms": decision.arms, "reason": failure[:300]})  # fmt: skip
                again = RequestState(req.request_id, req.user_id, req.k, req.now, base,
                                     req.explain)  # fmt: skip
                again.experiments, again.claimed_slots = req.experiments, req.claimed_slots
                started = time.perf_counter()
                await run(again)
                again.rerun_s = time.perf_counter() - started
                again.canary_failure = failure
                return again
        return req

    def after(self, req: RequestState, decision: Decision, elapsed_s: float) -> None:
        """Count the request by arm and start its shadow (if it was drawn for one).

        ``model_error`` is counted alike in both arms (the rollout's model slots failed the
        request), so the controller compares like with like: a busy machine that times out
        ranking calls does it to production as much as to the canary. For the same reason a
        canary request is timed without production's re-run of it: production's own failures
        are timed to their fallback, and a canary charged for both runs looked slower on a
        loaded machine even against itself (an A/A demo rolled back on p99 232 vs 87 ms, means
        47 vs 35 ms); its failures are the error guardrail's to judge.
        """
        plain = "degraded" if req.run.degraded else "ok"
        if req.experiment is not None:
            self._experiments(req, plain, elapsed_s)
        for a in decision.rollouts:
            arm = decision.arms[a.rollout_id]
            if arm == "canary":
                failed = req.canary_failure is not None
            else:
                failed = slot_failure(req, a.slots) is not None
            outcome = "model_error" if failed else plain
            metrics.ROLLOUT_REQUESTS.labels(a.rollout_id, arm, outcome).inc()
            own_s = elapsed_s - req.rerun_s if arm == "canary" else elapsed_s
            metrics.ROLLOUT_LATENCY.labels(a.rollout_id, arm).observe(own_s)
        if decision.shadow is not None and self.shadow is not None:
            self.shadow.submit(req, decision)

    def _experiments(self, req: RequestState, outcome: str, elapsed_s: float) -> None:
        """Experiment traffic by arm, items by team, and the arms to remember."""
        d = req.experiment
        assert d is not None
        for experiment_id, arm in d.arms.items():
            experiment_metrics.EXPERIMENT_REQUESTS.labels(experiment_id, arm, outcome).inc()
            experiment_metrics.EXPERIMENT_LATENCY.labels(experiment_id, arm).observe(elapsed_s)
        teams = req.teams()
        if teams and d.interleave is not None:
            for name in d.interleave.arm_names:
                n = teams.count(name)
                if n:
                    experiment_metrics.TEAM_ITEMS.labels(d.interleave.experiment_id, name).inc(n)
        if d.remember and self.remember is not None:
            task = asyncio.create_task(self._remember(req.user_id, d.remember))
            self._writes.add(task)  # held until done: a dropped task may be collected early
            task.add_done_callback(self._writes.discard)

    async def _remember(self, user_id: str, arms: dict[str, str]) -> None:
        assert self.remember is not None
        try:
            await self.remember(user_id, arms)
        except Exception as exc:  # the store down: the hash gives the same arm until weights move
            experiment_metrics.REMEMBER_ERRORS.inc()
            log.warning("could not remember experiment arms", extra={"error": str(exc)[:200]})
