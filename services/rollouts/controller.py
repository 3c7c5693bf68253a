"""Controller: runs every active rollout through its plan, one look per tick.

A rollout moves through its steps like this (each arrow is a decision in its history)::

    start ─ candidate checked, alias set (shadow or canary) ─▶ warming
    warming ─ every serving process holds the candidate ─▶ running (traffic published)
    running ─ pass ─▶ next step (warming again when the alias changes) … ─▶ promoting
    running ─ fail / SRM ─▶ rolled_back / halted (traffic off at once, aliases removed)
    running ─ inconclusive ─▶ extend (same step, longer) or holding (a person decides)
    promoting ─ services hold the new production ─▶ promoted (canary, shadow aliases removed)

The controller decides nothing while it cannot see: MLflow, the metrics or the exposure log
unreachable puts the rollout on hold with the reason (``hold_reason``), and the next tick
that sees everything carries on. Traffic goes off a failed canary before anything else
(the gateways poll the assignments every second); alias clean-up follows and is retried
until the registry takes it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from services.gateway.rollouts.assignment import Assignment, Assignments
from services.rollouts import metrics
from services.rollouts.analysis import Look, Verdict, judge
from services.rollouts.plan import SLOT_OF_PART, Plan
from services.rollouts.registry_ops import CandidateRefused, RegistryOps
from services.rollouts.store import DecisionRecord, Rollout, RolloutStore
from shared.models.registry import RegistryUnavailableError

if TYPE_CHECKING:  # the book imports Refusal from here
    from services.rollouts.experiments.book import ExperimentBook

log = logging.getLogger(__name__)
ALIAS_OF_STEP = {"shadow": "shadow", "canary": "canary"}
ROLLOUT_ALIASES = ("shadow", "canary")
# The series a step's baseline keeps (what the analysis differences against).
BASELINE_SERIES = (
    "cascade_rollout_requests_total", "cascade_rollout_request_duration_seconds",
    "cascade_shadow_requests_total", "cascade_shadow_duration_seconds",
    "cascade_shadow_agreement", "cascade_shadow_score_delta",
    "process_start_time_seconds",  # tells a restarted process (counted from zero) apart
)  # fmt: skip


class Refusal(Exception):
    """A request the controller will not carry out; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class MetricsLike(Protocol):
    """What the controller needs of the metrics (services/rollouts/metrics_source.py)."""

    async def snapshot(self) -> Any: ...


class ExposureLike(Protocol):
    """What the controller needs of the exposure log (services/rollouts/exposure.py)."""

    def start(self, rollout_id: str, since_ts: float) -> None: ...

    def stop(self, rollout_id: str) -> None: ...

    def healthy(self) -> tuple[bool, str]: ...

    def arm_units(self, rollout_id: str, arm: str) -> Any: ...


@dataclass
class Sight:
    """Everything one tick could read (None where it could not, with the reason)."""

    snapshot: Any = None
    problems: list[str] = field(default_factory=list)


class Controller:
    """The rollouts' state machine over the registry, the metrics and the exposure log."""

    def __init__(
        self,
        store: RolloutStore,
        registry: RegistryOps,
        metrics_source: MetricsLike,
        exposure: ExposureLike,
        warm_timeout_s: float = 180.0,
        clock: Callable[[], float] = time.time,
        experiments: ExperimentBook | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.metrics_source = metrics_source
        self.exposure = exposure
        self.warm_timeout_s = warm_timeout_s
        self.clock = clock
        self.lock = asyncio.Lock()  # one mutation at a time: ticks and API calls
        self.latest: dict[str, dict[str, Any]] = {}  # rollout id -> last look's figures
        self._assignments = Assignments()
        self._version = int(self.clock() * 1000)
        self._tags: list[tuple[str, str, str, str]] = []  # (part, version, key, value) to write
        # The metric test of each rollout's current step, carried from look to look (its
        # running p-value and interval); lost at a restart, which only makes it less tight.
        self._tests: dict[tuple[str, int], Any] = {}
        # Experiments (services/rollouts/experiments) share this lock and this document, so a
        # rollout and an experiment are checked against each other one change at a time.
        self.experiments = experiments
        if experiments is not None:
            experiments.bind(self.lock, self._publish)

    # -- what the gateways follow -------------------------------------------------------

    def assignments(self) -> Assignments:
        """The traffic split now in force (what ``GET /v1/assignments`` answers)."""
        return self._assignments

    def _publish(self) -> None:
        """Rebuild the assignments from the stored state (called after every change)."""
        rollouts = []
        for r in self.store.all(active_only=True):
            step = r.current_step
            if step is None or r.phase != "running":
                continue  # warming: the candidate is not loaded everywhere yet
            canary = step.share if step.kind == "canary" else 0.0
            shadow = step.share if step.kind == "shadow" else 0.0
            endpoints = dict(r.plan.endpoints) if step.kind == "canary" else {}
            rollouts.append(
                Assignment(r.id, r.plan.slots, r.id, canary, shadow, endpoints)  # type: ignore[arg-type]
            )
        new = tuple(rollouts)
        experiments = self.experiments.assignments() if self.experiments is not None else ()
        if new != self._assignments.rollouts or experiments != self._assignments.experiments:
            self._version = max(self._version + 1, int(self.clock() * 1000))
            self._assignments = Assignments(new, self._version, experiments)
        for r in self.store.all(limit=20):
            metrics.publish_state(r)

    # -- API -----------------------------------------------------------------------------

    async def start(self, plan: Plan) -> Rollout:
        """Check and begin a rollout (Refusal: nothing changed in the registry)."""
        async with self.lock:
            # A slot a running experiment changes is not rolled out as well: both would
            # claim the same users for it (the experiment's own check is the converse).
            claims = self.experiments.claiming(plan.slots) if self.experiments else []
            if claims:
                experiment_id, slots = claims[0]
                raise Refusal(
                    409,
                    f"models.{slots[0]} is changed by running experiment {experiment_id}; "
                    f"stop it before rolling out {plan.model}",
                )
            for other in self.store.all(active_only=True):
                shared = set(other.plan.parts) & set(plan.parts)
                if shared:
                    raise Refusal(
                        409,
                        f"{', '.join(sorted(shared))} already rolling out in {other.id} "
                        f"({other.state}); finish or abort it first",
                    )
            try:
                await asyncio.to_thread(self.registry.check_candidate, dict(plan.candidate))
                before = {}
                for part in plan.parts:
                    v = await asyncio.to_thread(self.registry.alias_version, part, "production")
                    if v is None:
                        raise Refusal(422, f"{part} has no production version to compare with")
                    before[part] = v
            except CandidateRefused as exc:
                raise Refusal(422, str(exc)) from None
            except RegistryUnavailableError as exc:
                raise Refusal(503, f"cannot check the candidate: {exc}") from None
            rid = f"{plan.model}-" + "-".join(
                plan.candidate[p] for p in plan.parts
            ) + f"-{secrets.token_hex(3)}"  # fmt: skip
            r = Rollout(rid, plan, production_before=before, created=self.clock())
            self._decide(r, "start", [f"candidate {dict(plan.candidate)} against production "
                                      f"{before}"])  # fmt: skip
            await self._enter_step(r, 0)
            return r

    async def promote(self, rollout_id: str, reason: str = "") -> Rollout:
        """Promote now, skipping the steps left (a person's decision)."""
        async with self.lock:
            r = self._active(rollout_id)
            await self._promote(r, [f"promoted by hand{': ' + reason if reason else ''}"])
            return r

    async def abort(self, rollout_id: str, reason: str = "") -> Rollout:
        """Stop the rollout: traffic back on production, aliases removed."""
        async with self.lock:
            r = self._active(rollout_id)
            await self._roll_back(
                r, "aborted", [f"aborted by hand{': ' + reason if reason else ''}"]
            )
            return r

    async def resume(self, rollout_id: str, reason: str = "") -> Rollout:
        """Carry on from a hold: the next step (or promotion after the last)."""
        async with self.lock:
            r = self._active(rollout_id)
            if r.state != "holding":
                raise Refusal(409, f"{rollout_id} is {r.state}, not holding")
            r.state = "running"
            self._decide(r, "resume", [f"resumed by hand{': ' + reason if reason else ''}"])
            await self._next_step(r)
            return r

    def _active(self, rollout_id: str) -> Rollout:
        r = self.store.get(rollout_id)
        if r is None:
            raise Refusal(404, f"no rollout {rollout_id}")
        if not r.active:
            raise Refusal(409, f"{rollout_id} has ended ({r.state})")
        return r

    # -- the loop ------------------------------------------------------------------------

    async def resume_after_restart(self) -> None:
        """Pick up the stored rollouts: re-assert their aliases, re-read their exposure."""
        async with self.lock:
            for r in self.store.all(active_only=True):
                log.info("resuming rollout", extra={"rollout": r.id, "step": r.step,
                                                    "phase": r.phase})  # fmt: skip
                if r.phase == "running" and r.step_started is not None:
                    self.exposure.start(r.id, r.step_started)
            self._publish()

    async def tick(self) -> None:
        """One look at every active rollout (and clean-up of ended ones)."""
        async with self.lock:
            if self.experiments is not None:
                await self.experiments.on_tick()  # scheduled starts and stops
            active = self.store.all(active_only=True)
            pending = [r for r in self.store.all(limit=50) if r.phase == "cleanup"]
            if not active and not pending:
                self._publish()
                return
            sight = await self._look_around()
            for r in pending:
                await self._clean_up(r)
            for r in active:
                await self._advance(r, sight)
            self._publish()
            await self.flush_tags()

    async def run_forever(self, every_s: float) -> None:
        """Tick every ``every_s`` until cancelled (a failing tick is logged, never fatal)."""
        await self.resume_after_restart()
        while True:
            started = time.monotonic()
            try:
                await self.tick()
            except Exception:  # a bug in one look must not stop every rollout's watch
                log.exception("controller tick failed")
                metrics.TICK_FAILURES.inc()
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - started)))

    async def _look_around(self) -> Sight:
        sight = Sight()
        ok, why = await asyncio.to_thread(self.registry.reachable)
        if not ok:
            sight.problems.append(f"registry: {why}")
        try:
            sight.snapshot = await self.metrics_source.snapshot()
        except Exception as exc:  # MetricsUnavailable, or anything the source raised
            sight.problems.append(f"metrics: {exc}")
        ok, why = self.exposure.healthy()
        if not ok:
            sight.problems.append(f"exposure log: {why}")
        return sight

    async def _advance(self, r: Rollout, sight: Sight) -> None:
        if sight.problems:
            reason = "; ".join(sight.problems)[:500]
            if r.hold_reason != reason:
                log.warning("rollout holds: cannot see", extra={"rollout": r.id,
                                                                "reason": reason})  # fmt: skip
                r.hold_reason = reason
                self.store.save(r)
            metrics.HOLDING.labels(r.id).set(1)
            return
        if r.hold_reason:
            r.hold_reason = ""
            self.store.save(r)
        metrics.HOLDING.labels(r.id).set(0)
        if r.phase == "warming":
            await self._check_warm(r, sight)
        elif r.phase == "promoting":
            await self._check_promoted(r, sight)
        elif r.phase == "running":
            await self._judge(r, sight)

    # -- steps -------------------------------------------------------------------------

    async def _enter_step(self, r: Rollout, index: int) -> None:
        """Set the step's alias (when it changes) and wait for the services to load it."""
        previous = r.current_step if r.step != index else None
        r.step = index
        r.extensions = 0
        step = r.plan.steps[index]
        alias = ALIAS_OF_STEP[step.kind]
        if previous is not None and previous.kind == step.kind:
            # Same alias: the candidate is loaded; the new step starts now at its new share.
            await self._start_running(r)
            return
        for part in r.plan.parts:
            await asyncio.to_thread(self.registry.set_alias, part, alias, r.plan.candidate[part])
        r.phase, r.step_started = "warming", self.clock()
        self.store.save(r)
        self._publish()  # the previous step's share is off before its alias goes
        if previous is not None:
            old = ALIAS_OF_STEP[previous.kind]
            for part in r.plan.parts:
                await asyncio.to_thread(self.registry.delete_alias, part, old)

    async def _check_warm(self, r: Rollout, sight: Sight) -> None:
        step = r.current_step
        alias = ALIAS_OF_STEP[step.kind]
        waiting = metrics.services_missing(sight.snapshot, r.plan, alias)
        if not waiting:
            self._decide(r, "warm", [f"every serving process holds the candidate at @{alias}"])
            await self._start_running(r)
            return
        waited = self.clock() - (r.step_started or self.clock())
        if waited > self.warm_timeout_s:
            await self._roll_back(r, "rolled_back", [
                f"the candidate was not loaded by {', '.join(waiting)} within "
                f"{self.warm_timeout_s:.0f} s (see their logs and /readyz)"])  # fmt: skip

    async def _start_running(self, r: Rollout) -> None:
        r.phase, r.step_started = "running", self.clock()
        try:
            snapshot = await self.metrics_source.snapshot()
            r.baseline = metrics.to_json(snapshot, BASELINE_SERIES)
        except Exception as exc:  # the first look will hold on the same problem
            log.warning("baseline metrics unavailable", extra={"error": str(exc)})
            r.baseline = {}
        self.exposure.start(r.id, r.step_started)
        self.store.save(r)
        self._publish()

    async def _judge(self, r: Rollout, sight: Sight) -> None:
        step = r.current_step
        now = self.clock()
        key = (r.id, r.step)
        look = Look(
            now=now, elapsed_s=now - (r.step_started or now),
            deadline_s=step.duration_s * (1 + r.extensions),
            before=metrics.from_json(r.baseline), after=sight.snapshot,
            exposure=self.exposure, holding=r.state == "holding",
            previous=self._tests.get(key),
        )  # fmt: skip
        verdict: Verdict = judge(r.id, step, r.plan.analysis, look)
        if verdict.test is not None:
            self._tests = {key: verdict.test} | {
                k: v for k, v in self._tests.items() if k[0] != r.id
            }
        self.latest[r.id] = verdict.figures
        metrics.publish_figures(r.id, verdict.figures)
        if verdict.outcome == "continue":
            return
        if verdict.outcome == "pass":
            self._decide(r, "pass", verdict.reasons, verdict.figures)
            await self._next_step(r)
        elif verdict.outcome in ("fail", "halt"):
            state = "halted" if verdict.outcome == "halt" else "rolled_back"
            self._decide(r, verdict.outcome, verdict.reasons, verdict.figures)
            await self._roll_back(r, state, verdict.reasons)
        elif verdict.outcome == "inconclusive":
            await self._inconclusive(r, verdict)

    async def _inconclusive(self, r: Rollout, verdict: Verdict) -> None:
        step = r.current_step
        action = step.on_inconclusive
        if action == "extend" and r.extensions < step.max_extensions:
            r.extensions += 1
            self._decide(r, "extend", [*verdict.reasons, f"step extended ({r.extensions} of "
                                       f"{step.max_extensions})"], verdict.figures)  # fmt: skip
            self.store.save(r)
        elif action == "rollback":
            self._decide(r, "inconclusive", verdict.reasons, verdict.figures)
            await self._roll_back(r, "rolled_back", [*verdict.reasons, "inconclusive: rolled back"])
        else:
            r.state = "holding"
            self._decide(r, "hold", [*verdict.reasons, "waiting for a person: resume, promote "
                                     "or abort"], verdict.figures)  # fmt: skip
            self.store.save(r)

    async def _next_step(self, r: Rollout) -> None:
        if r.step + 1 < len(r.plan.steps):
            await self._enter_step(r, r.step + 1)
        elif r.plan.auto_promote:
            await self._promote(r, ["every step passed"])
        else:
            r.state = "holding"
            self._decide(r, "hold", ["every step passed; the plan waits for a person to promote"])
            self.store.save(r)

    # -- endings -------------------------------------------------------------------------

    async def _promote(self, r: Rollout, reasons: list[str]) -> None:
        for part in r.plan.parts:
            await asyncio.to_thread(self.registry.set_alias, part, "production",
                                    r.plan.candidate[part])  # fmt: skip
        r.state, r.phase, r.step_started = "running", "promoting", self.clock()
        self._decide(r, "promote", reasons)
        self.store.save(r)

    async def _check_promoted(self, r: Rollout, sight: Sight) -> None:
        waiting = metrics.services_missing(sight.snapshot, r.plan, "production")
        waited = self.clock() - (r.step_started or self.clock())
        if waiting and waited <= self.warm_timeout_s:
            return  # canary users keep the candidate until production serves it everywhere
        reasons = ["every serving process serves the candidate as production"]
        if waiting:
            reasons = [f"production moved, but {', '.join(waiting)} did not load it within "
                       f"{self.warm_timeout_s:.0f} s"]  # fmt: skip
        r.state, r.phase = "promoted", "cleanup"
        self._decide(r, "promoted", reasons)
        self.exposure.stop(r.id)
        self._publish()
        await self._clean_up(r)

    async def _roll_back(self, r: Rollout, state: str, reasons: list[str]) -> None:
        """Traffic off the candidate first (published now), then the aliases."""
        r.state, r.phase = state, "cleanup"
        self._decide(r, "abort" if state == "aborted" else "rollback", reasons)
        self._publish()
        self.exposure.stop(r.id)
        await self._clean_up(r)

    async def flush_tags(self) -> None:
        """Write the decisions' tags to their versions (kept for the next try on failure)."""
        while self._tags:
            part, version, key, value = self._tags[0]
            try:
                await asyncio.to_thread(self.registry.tag, part, version, key, value)
            except RegistryUnavailableError as exc:
                log.warning("decision tags wait for the registry", extra={"error": str(exc)})
                return
            self._tags.pop(0)

    async def _clean_up(self, r: Rollout) -> None:
        """Remove the rollout's aliases and tag its versions (retried while MLflow is down)."""
        try:
            for part in r.plan.parts:
                for alias in ROLLOUT_ALIASES:
                    current = await asyncio.to_thread(self.registry.alias_version, part, alias)
                    if current == r.plan.candidate[part]:
                        await asyncio.to_thread(self.registry.delete_alias, part, alias)
        except RegistryUnavailableError as exc:
            log.warning("alias clean-up waits for the registry",
                        extra={"rollout": r.id, "error": str(exc)})  # fmt: skip
            return
        r.phase = "done"
        self.store.save(r)

    def _decide(self, r: Rollout, decision: str, reasons: list[str],
                figures: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Record a decision: history (SQLite), log line, metric; the tag follows in clean-up."""
        record = DecisionRecord(r.id, self.clock(), r.step, decision, reasons, figures or {})
        self.store.save(r, record)
        summary = f"step {r.step} {decision}: " + "; ".join(reasons)
        for part in r.plan.parts:
            version = r.plan.candidate[part]
            self._tags.append((part, version, f"{r.id}.last_decision", summary))
            self._tags.append((part, version, f"{r.id}.state", r.state))
        metrics.DECISIONS.labels(decision).inc()
        log.info("rollout decision", extra={"rollout": r.id, "step": r.step,
                                            "decision": decision, "reasons": reasons})  # fmt: skip


def slots_of_parts(parts: tuple[str, ...]) -> tuple[str, ...]:
    """The serving slots a set of registry parts fills."""
    return tuple(dict.fromkeys(SLOT_OF_PART[p] for p in parts))
