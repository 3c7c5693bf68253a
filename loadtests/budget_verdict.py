"""The verdict of a stepped load test against the latency budget: per stage, and the knee.

A stage breaks its budget at a rate when its p99 there is over its budget, or when more than a
small share of its calls failed: the gateway cuts a stage at its deadline, so a stage that
times out shows a p99 near its budget and would otherwise look fine. A call refused because
the request's whole budget was already spent (kind ``deadline``) is not held against the stage:
the stages before it spent the time, and their own p99 or timeouts say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

STARVED_KIND = "deadline"


@dataclass(frozen=True)
class StageStep:
    """One stage at one request rate: calls, p50/p99 (ms, NaN without calls), errors by kind."""

    rate: float
    calls: float
    p50_ms: float
    p99_ms: float
    errors: Mapping[str, float] = field(default_factory=dict)

    @property
    def own_errors(self) -> float:
        """Failures of the stage itself (every kind but ``deadline``)."""
        return sum(v for k, v in self.errors.items() if k != STARVED_KIND)

    @property
    def error_share(self) -> float:
        """Own failures per call."""
        return self.own_errors / self.calls if self.calls else 0.0

    @property
    def starved_share(self) -> float:
        """Calls not made because the request's total budget was spent, per call."""
        return self.errors.get(STARVED_KIND, 0.0) / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class PathStep:
    """The whole request at one rate, as the client saw it (latency from the scheduled time)."""

    rate: float
    requests: int
    p99_ms: float
    errors: int
    degraded_share: float

    @property
    def error_share(self) -> float:
        """Errors per request sent."""
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Criteria:
    """What counts as within budget, as the knee, and as broken badly enough to stop."""

    p99_target_ms: float
    max_stage_error_share: float = 0.01
    max_degraded_share: float = 0.01
    stop_p99_factor: float = 4.0
    stop_error_share: float = 0.05
    stop_degraded_share: float = 0.5


@dataclass(frozen=True)
class StageVerdict:
    """Up to which rate a stage kept its budget, where it first broke it, and why."""

    stage: str
    budget_ms: float
    within_up_to_rps: float | None  # None: broken from the first rate, or never called
    first_broke_rps: float | None  # None: never broke at the rates run
    why: str  # the breach at first_broke_rps ("" when none)
    called: bool


@dataclass(frozen=True)
class Verdict:
    """Per-stage verdicts, the knee of the whole path and the stage that broke first."""

    stages: dict[str, StageVerdict]
    knee_rps: float | None
    first_broken: list[str]  # the stage(s) that broke at the lowest rate; [] when none did
    path_breach: dict[float, str]  # rate -> why the whole path missed its target there


def stage_breach(step: StageStep, budget_ms: float, max_error_share: float) -> str:
    """Why ``step`` breaks ``budget_ms`` ("" when it does not, or the stage was not called)."""
    if not step.calls:
        return ""
    if step.error_share > max_error_share:
        own = (f"{k} {v:.0f}" for k, v in sorted(step.errors.items()) if v and k != STARVED_KIND)
        why = f"failed {step.error_share:.1%} of {step.calls:.0f} calls ({', '.join(own)})"
        starved = step.errors.get(STARVED_KIND, 0.0)
        return why + (f"; {starved:.0f} more not run, request deadline spent" if starved else "")
    if step.p99_ms > budget_ms:
        return f"p99 {step.p99_ms:.1f} ms > {budget_ms:g} ms"
    return ""


def judge_stage(
    stage: str, budget_ms: float, steps: Sequence[StageStep], max_error_share: float
) -> StageVerdict:
    """The verdict of one stage over steps of increasing rate."""
    within: float | None = None
    called = False
    for step in sorted(steps, key=lambda s: s.rate):
        if not step.calls:
            continue
        called = True
        why = stage_breach(step, budget_ms, max_error_share)
        if why:
            return StageVerdict(stage, budget_ms, within, step.rate, why, True)
        within = step.rate
    return StageVerdict(stage, budget_ms, within, None, "", called)


def path_breach(step: PathStep, c: Criteria) -> str:
    """Why the whole path misses the knee's criteria at ``step`` ("" when it meets them)."""
    reasons = []
    if step.errors:
        reasons.append(f"{step.errors} errors")
    if step.degraded_share > c.max_degraded_share:
        reasons.append(f"{step.degraded_share:.1%} degraded > {c.max_degraded_share:.0%}")
    if not step.p99_ms <= c.p99_target_ms:  # NaN (nothing answered) fails too
        reasons.append(f"p99 {step.p99_ms:.1f} ms > {c.p99_target_ms:g} ms")
    return "; ".join(reasons)


def knee(steps: Sequence[PathStep], c: Criteria) -> float | None:
    """The highest rate at which the whole path met its criteria, as did every lower rate."""
    best = None
    for step in sorted(steps, key=lambda s: s.rate):
        if path_breach(step, c):
            break
        best = step.rate
    return best


def broken_badly(step: PathStep, c: Criteria) -> str:
    """Why the load test should stop after ``step`` ("" to go on to the next rate)."""
    if step.error_share > c.stop_error_share:
        return f"{step.error_share:.1%} errors > {c.stop_error_share:.0%}"
    if step.degraded_share > c.stop_degraded_share:
        return f"{step.degraded_share:.1%} degraded > {c.stop_degraded_share:.0%}"
    if math.isnan(step.p99_ms) or step.p99_ms > c.stop_p99_factor * c.p99_target_ms:
        return f"p99 {step.p99_ms:.1f} ms > {c.stop_p99_factor:g} x {c.p99_target_ms:g} ms"
    return ""


def judge(
    budgets_ms: Mapping[str, float],
    stage_steps: Mapping[str, Sequence[StageStep]],
    path_steps: Sequence[PathStep],
    c: Criteria,
) -> Verdict:
    """Every stage against its budget, the knee, and which stage broke first."""
    stages = {
        name: judge_stage(name, budget, stage_steps.get(name, ()), c.max_stage_error_share)
        for name, budget in budgets_ms.items()
    }
    broke = {n: v.first_broke_rps for n, v in stages.items() if v.first_broke_rps is not None}
    lowest = min(broke.values(), default=None)
    first = sorted(n for n, r in broke.items() if r == lowest)
    breaches = {s.rate: why for s in path_steps if (why := path_breach(s, c))}
    return Verdict(stages, knee(path_steps, c), first, breaches)
