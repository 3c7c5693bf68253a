"""ExperimentBook: every experiment, checked against the rollouts and its layer, published.

The controller owns the book and shares its lock with it, so "a rollout and an experiment
cannot claim the same users for the same model slot" is decided in one place, one change at a
time. An experiment's life (each arrow is a decision in its history)::

    create ─ plan, arms and models checked ─▶ created ─ due now ─▶ started (range of its layer)
    created, start_at in the future ─ the controller's tick reaches it ─▶ started
    started ─ PATCH weights ─▶ weights_changed (same range, same salt)
    started ─ stop by hand, or stop_at reached ─▶ stopped (its range is free again)

A refusal changes nothing and is not stored: 422 (the plan or an arm does not fit: the field),
409 (a conflict: the other party named), 503 (MLflow unreachable: the arms' models cannot be
checked). A scheduled experiment that cannot start when due (its layer is full, a rollout
holds its slot, an alias is gone) waits, with the reason in ``waiting``, and is tried again
on every tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from prometheus_client import Counter

from services.gateway.experiments.assignment import ExperimentAssignment
from services.rollouts.controller import Refusal
from services.rollouts.experiments.aliases import AliasReader, missing_aliases
from services.rollouts.experiments.allocation import Range, first_fit, free_gaps
from services.rollouts.experiments.declarations import GatewayDeclarations, PlanRefused
from services.rollouts.experiments.plan import WEIGHT_TOLERANCE, ExperimentPlan, check_weights
from services.rollouts.experiments.store import Experiment, ExperimentDecision, ExperimentStore
from services.rollouts.experiments.watch import ExperimentWatch
from services.rollouts.store import RolloutStore
from shared.models.registry import RegistryUnavailableError

log = logging.getLogger(__name__)
DECISIONS = Counter(
    "cascade_experiment_decisions_total", "Experiment decisions by kind", ["decision"]
)
RETRIED = (409, 503)  # a declared experiment refused for these is tried again (they pass)


class ExperimentBook:
    """Create, stop and re-weight experiments; start and stop them on time; publish them."""

    def __init__(
        self,
        store: ExperimentStore,
        rollouts: RolloutStore,
        declarations: GatewayDeclarations,
        registry: AliasReader,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.rollouts = rollouts
        self.declarations = declarations
        self.registry = registry
        self.clock = clock
        self.lock = asyncio.Lock()  # replaced by the controller's own in bind()
        self._changed: Callable[[], None] = lambda: None
        self._published: tuple[ExperimentAssignment, ...] | None = None
        self._declared: list[ExperimentPlan] = []
        self._declared_why: dict[str, str] = {}  # last refusal logged per declared name
        self.watch: ExperimentWatch | None = None  # looks at the running ones (app sets it)

    def bind(self, lock: asyncio.Lock, on_change: Callable[[], None]) -> None:
        """Share the controller's lock, and tell it (``on_change``) to republish."""
        self.lock = lock
        self._changed = on_change

    # -- reads ---------------------------------------------------------------------------

    def assignments(self) -> tuple[ExperimentAssignment, ...]:
        """The running experiments as the gateways apply them (rebuilt after each change)."""
        if self._published is None:
            running = [e for e in self.store.all(active_only=True) if e.state == "running"]
            running.sort(key=lambda e: (e.plan.layer, e.range or (0.0, 0.0)))
            self._published = tuple(e.assignment() for e in running)
        return self._published

    def claiming(self, slots: Iterable[str]) -> list[tuple[str, list[str]]]:
        """(experiment id, slots) of every running experiment changing one of ``slots``."""
        wanted = set(slots)
        out = []
        for a in self.assignments():
            shared = sorted(a.model_slots() & wanted)
            if shared:
                out.append((a.experiment_id, shared))
        return out

    def get(self, experiment_id: str) -> Experiment | None:
        """One experiment (None: unknown)."""
        return self.store.get(experiment_id)

    def all(self, active_only: bool = False, limit: int = 100) -> list[Experiment]:
        """Experiments, newest first (``active_only``: scheduled or running)."""
        return self.store.all(active_only=active_only, limit=limit)

    def history(self, experiment_id: str) -> list[ExperimentDecision]:
        """Every decision of one experiment, oldest first."""
        return self.store.history(experiment_id)

    # -- writes (each takes the shared lock) ---------------------------------------------

    async def create(self, plan: ExperimentPlan) -> Experiment:
        """Check and store an experiment; start it now unless ``start_at`` is later."""
        async with self.lock:
            e = await self._create(plan)
        self._changed()
        return e

    async def stop(self, experiment_id: str, reason: str = "") -> Experiment:
        """Stop a scheduled or running experiment (its range is free again)."""
        async with self.lock:
            e = self._active(experiment_id)
            self._stop(e, [f"stopped by hand{': ' + reason if reason else ''}"])
        self._changed()
        return e

    async def set_weights(self, experiment_id: str, weights: dict[str, float]) -> Experiment:
        """New arm weights; the range and the salt stay, so no user changes experiment.

        Sticky users keep their arm (the gateway remembers it): only users not yet assigned
        are split by the new weights."""
        async with self.lock:
            e = self._active(experiment_id)
            if e.plan.kind == "interleaving":
                raise Refusal(
                    422,
                    "weights: an interleaving experiment's weights are fixed at "
                    "0.5/0.5 (every user sees both arms)",
                )
            arms = sorted(a.name for a in e.arms)
            if sorted(weights) != arms:
                raise Refusal(
                    422,
                    f"weights: name every arm of {e.id} exactly once "
                    f"({', '.join(arms)}), got {', '.join(sorted(weights))}",
                )
            try:
                check_weights(weights, "weights")
            except ValueError as exc:
                raise Refusal(422, str(exc)) from None
            before = {a.name: a.weight for a in e.arms}
            if all(abs(before[n] - w) <= WEIGHT_TOLERANCE for n, w in weights.items()):
                return e
            e.plan = e.plan.with_weights(weights)
            e.arms = tuple(msgspec.structs.replace(a, weight=weights[a.name]) for a in e.arms)
            note = (
                "sticky: assigned users keep their arm"
                if e.plan.sticky
                else "not sticky: users move to the arm the new weights give them"
            )
            self._save(
                e,
                "weights_changed",
                [f"weights {before} -> {weights}; {note}"],
                {"before": before, "after": weights},
            )
        self._changed()
        return e

    def declare(self, plans: Iterable[ExperimentPlan]) -> None:
        """Experiments of the declared file: each created on the next tick unless it exists."""
        self._declared.extend(plans)

    # -- the controller's tick (called under the shared lock) ----------------------------

    async def on_tick(self) -> None:
        """Scheduled stops, then scheduled starts (into ranges just freed), then the
        declared experiments not created yet."""
        now = self.clock()
        active = self.store.all(active_only=True)
        for e in active:
            if e.plan.stop_at is not None and e.plan.stop_at <= now:
                why = "its stop_at passed"
                if e.state == "scheduled":
                    why += " before it could start" + (f" ({e.waiting})" if e.waiting else "")
                self._stop(e, [why])
        due = [e for e in active if e.state == "scheduled" and (e.plan.start_at or 0.0) <= now]
        for e in sorted(due, key=lambda x: (x.plan.start_at or 0.0, x.created)):
            await self._start_due(e)
        await self._create_declared()
        if self.watch is not None:
            await self.watch.on_tick(self.store.all(limit=100))

    # -- inside the lock -----------------------------------------------------------------

    def _active(self, experiment_id: str) -> Experiment:
        e = self.store.get(experiment_id)
        if e is None:
            raise Refusal(404, f"no experiment {experiment_id}")
        if not e.active:
            raise Refusal(409, f"{experiment_id} has ended ({e.state})")
        return e

    async def _create(self, plan: ExperimentPlan) -> Experiment:
        now = self.clock()
        old = self.store.get(plan.name)
        if old is not None:
            # Names are the hash salt and the key of remembered arms: never reused.
            raise Refusal(
                409,
                f"experiment {plan.name} already exists ({old.state}); "
                "names are never reused, choose another",
            )
        if plan.stop_at is not None and plan.stop_at <= now:
            raise Refusal(422, f"stop_at {plan.stop_at} is in the past (now {now:.0f})")
        try:
            arms = self.declarations.resolve(plan)
        except PlanRefused as exc:
            raise Refusal(422, str(exc)) from None
        e = Experiment(plan.name, plan, arms, created=now)
        due = plan.start_at is None or plan.start_at <= now
        place = self._place(e) if due else None
        await self._check_models(e)
        shown = ", ".join(f"{a.name} {a.weight:g}" for a in arms)
        created = self._decision(
            e,
            "created",
            [f"{plan.kind} in layer {plan.layer}, {plan.traffic:g} of its users; arms {shown}"],
            {"arms": msgspec.to_builtins(arms)},
        )
        if place is None:
            self.store.save(e, created)
            return e
        e.state, e.range, e.started = "running", place, now
        self.store.save(e, created, self._started(e))
        self._published = None
        return e

    async def _check_models(self, e: Experiment) -> None:
        """Every alias the arms name exists in MLflow (no call when no arm names a model)."""
        if not any(a.models for a in e.arms):
            return
        try:
            missing = await asyncio.to_thread(missing_aliases, self.registry, e.arms)
        except RegistryUnavailableError as exc:
            raise Refusal(503, f"cannot check the arms' models: {exc}") from None
        if missing:
            raise Refusal(422, "; ".join(missing))

    def _place(self, e: Experiment) -> Range:
        """The range ``e`` would hold now (Refusal 409 naming whoever is in the way)."""
        slots = {slot for a in e.arms for slot in a.models}
        for r in self.rollouts.all(active_only=True):
            shared = sorted(set(r.plan.slots) & slots)
            if shared:
                raise Refusal(
                    409,
                    f"models.{shared[0]} is being rolled out by rollout {r.id} "
                    f"({r.state}); an experiment cannot change it until that "
                    "rollout ends",
                )
        running = [
            x
            for x in self.store.all(active_only=True)
            if x.state == "running" and x.id != e.id and x.range is not None
        ]
        mine = e.parameters()
        for x in running:
            shared = sorted(mine & x.parameters())
            if x.plan.layer != e.plan.layer and shared:
                # Layers are independent: a user can be in both, and would get one of two
                # values for the same thing. Experiments on one thing share a layer.
                raise Refusal(
                    409,
                    f"{shared[0]} is changed by experiment {x.id} in layer "
                    f"{x.plan.layer}; put {e.id} in that layer (so no user is in "
                    "both)",
                )
        layer = e.plan.layer
        same = [x for x in running if x.plan.layer == layer]
        used = sum(x.plan.traffic for x in same)
        if used + e.plan.traffic > 1 + WEIGHT_TOLERANCE:
            holders = ", ".join(f"{x.id} {x.plan.traffic:g}" for x in same)
            raise Refusal(
                409,
                f"layer {layer}: running experiments take {used:g} ({holders}); "
                f"{e.plan.traffic:g} more would exceed 1",
            )
        taken = [x.range for x in same if x.range is not None]
        got = first_fit(taken, e.plan.traffic)
        if got is None:
            gaps = ", ".join(f"[{lo:.4g}, {hi:.4g})" for lo, hi in free_gaps(taken))
            raise Refusal(
                409,
                f"layer {layer}: {1 - used:.4g} is free, but in pieces ({gaps}), "
                f"none {e.plan.traffic:g} wide; stop an experiment of the layer "
                "or use less traffic",
            )
        return got

    async def _start_due(self, e: Experiment) -> None:
        try:
            place = self._place(e)
            await self._check_models(e)  # an alias may have gone since the experiment's creation
        except Refusal as exc:
            if e.waiting != exc.reason:
                log.warning("experiment waits", extra={"experiment": e.id, "reason": exc.reason})
                e.waiting = exc.reason
                self.store.save(e)
            return
        e.state, e.range, e.started, e.waiting = "running", place, self.clock(), ""
        self.store.save(e, self._started(e))
        self._published = None

    def _stop(self, e: Experiment, reasons: list[str]) -> None:
        e.state, e.stopped, e.waiting, e.stop_reason = "stopped", self.clock(), "", reasons[0]
        self._save(e, "stopped", reasons, {"range": list(e.range) if e.range else None})

    def _started(self, e: Experiment) -> ExperimentDecision:
        lo, hi = e.range or (0.0, 0.0)
        return self._decision(
            e,
            "started",
            [f"holds [{lo:.4g}, {hi:.4g}) of layer {e.plan.layer}"],
            {"range": [lo, hi]},
        )

    def _save(
        self, e: Experiment, decision: str, reasons: list[str], details: dict[str, Any]
    ) -> None:
        self.store.save(e, self._decision(e, decision, reasons, details))
        self._published = None

    def _decision(
        self, e: Experiment, decision: str, reasons: list[str], details: dict[str, Any]
    ) -> ExperimentDecision:
        DECISIONS.labels(decision).inc()
        log.info(
            "experiment decision",
            extra={"experiment": e.id, "decision": decision, "reasons": reasons},
        )
        return ExperimentDecision(e.id, self.clock(), decision, reasons, details)

    async def _create_declared(self) -> None:
        """Create each declared experiment not stored yet (idempotent by name)."""
        pending = []
        for plan in self._declared:
            if self.store.get(plan.name) is not None:
                continue  # already there: created earlier, maybe stopped since (stays so)
            try:
                await self._create(plan)
            except Refusal as exc:
                if self._declared_why.get(plan.name) != exc.reason:
                    log.error(
                        "declared experiment refused",
                        extra={"experiment": plan.name, "status": exc.status, "reason": exc.reason},
                    )
                    self._declared_why[plan.name] = exc.reason
                if exc.status in RETRIED:
                    pending.append(plan)
        self._declared = pending
