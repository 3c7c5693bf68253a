"""Analysis of one look at a step: continue, pass, fail, halt or inconclusive, with reasons.

A shadow step is judged on the shadow's runs: too many failed runs fail it at any look; at
the end it passes when enough runs were compared and the agreement gates (if any) hold.

A canary step is judged on, in this order:

1. guardrails (``cascade_rollout_*`` from the gateways): the canary's error rate (requests
   its model failed and production answered), its degraded share against production's, its
   p99 against production's; any breach fails the step at once;
2. the split: a sample-ratio mismatch of users per arm (always-valid Dirichlet-multinomial
   test, so looking every few seconds does not inflate its error) halts the rollout, since
   every other figure is then suspect;
3. the online metric by arm, users as units, from the exposure log joined with the events:
   an always-valid mSPRT on the lift (shared/stats); "worse" fails the step at any look.

At the step's end it passes with enough users per arm and the evidence the plan requires:
``non_inferior`` (the default) needs the always-valid interval's low end above ``-margin``
(the canary is shown no more than ``margin`` worse: absence of evidence of harm is not
evidence of its absence, and a small step with a wide interval must not promote a bad
model); ``better`` needs a significant improvement; ``not_worse`` only that it was not shown
worse. Otherwise it is inconclusive. While a rollout holds, only failures
are acted on. The figures of every look are returned for the status, the metrics and the
history. Thresholds and their defaults: services/rollouts/plan.py, docs/rollouts.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from services.rollouts.metrics_source import (
    ArmFigures,
    Snapshot,
    arm_figures,
    shadow_figures,
)
from services.rollouts.off_policy_analysis import off_policy_figures, shown_worse
from services.rollouts.plan import Analysis, Guardrails, ShadowGates, Step
from shared.observability.prom_text import Histogram
from shared.stats.sequential import (
    ArmStats,
    SequentialResult,
    bernoulli_confidence_sequence,
    msprt,
    msprt_relative,
)
from shared.stats.srm import srm_sequential_check

Outcome = Literal["continue", "pass", "fail", "halt", "inconclusive"]
# Metrics where less is better would set higher_is_better=False; all of ours are engagement.
METRIC_PARTS = {
    "clicks_per_request": ("clicks", "requests"),
    "ctr": ("clicks", "impressions"),
    "likes_per_request": ("likes", "requests"),
    "watch_s_per_request": ("watch_s", "requests"),
}
SHADOW_MIN_RUNS = 50  # failed shadow runs judged only after this many ran (1 of 3 is noise)


class UnitsLike(Protocol):
    """Per-user aggregates of one arm (services/rollouts/exposure.py ``UnitArrays``)."""

    requests: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    likes: np.ndarray
    watch_s: np.ndarray


class ExposureLike(Protocol):
    """The exposure log as the analysis reads it."""

    def arm_units(self, rollout_id: str, arm: str) -> Any: ...


@dataclass
class Look:
    """What one look sees of a step."""

    now: float
    elapsed_s: float
    deadline_s: float  # the step's duration, with its extensions
    before: Snapshot | None  # metrics at the step's start
    after: Snapshot | None  # metrics now
    exposure: ExposureLike | None
    holding: bool = False
    previous: SequentialResult | None = None  # the metric test's last look of this step

    @property
    def at_end(self) -> bool:
        """The step has run its time."""
        return self.elapsed_s >= self.deadline_s


@dataclass
class Verdict:
    """The outcome of a look, why, and the figures behind it."""

    outcome: Outcome
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    test: SequentialResult | None = None  # carried to the next look


def judge(rollout_id: str, step: Step, analysis: Analysis, look: Look) -> Verdict:
    """The verdict of one look at ``step`` of ``rollout_id``."""
    if step.kind == "shadow":
        verdict = judge_shadow(rollout_id, step, analysis.shadow, look, analysis.alpha)
    else:
        verdict = judge_canary(rollout_id, step, analysis, look)
    verdict.figures["elapsed_s"] = round(look.elapsed_s, 1)
    verdict.figures["deadline_s"] = look.deadline_s
    if look.holding and verdict.outcome not in ("fail", "halt"):
        verdict.outcome = "continue"  # a person decides; only a breach still acts
    return verdict


def judge_shadow(rollout_id: str, step: Step, gates: ShadowGates, look: Look,
                 alpha: float = 0.05) -> Verdict:  # fmt: skip
    """Shadow step: failed runs, then sample, agreement and the off-policy estimate at the end."""
    if look.before is None or look.after is None:
        return Verdict("continue", ["no metrics yet"])
    s = shadow_figures(look.before, look.after, rollout_id)
    agreement = {f"{stage}.{measure}": _num(v) for (stage, measure), v in s.agreement.items()}
    figures = {
        "shadow": {"compared": s.compared, "errors": s.errors, "dropped": s.dropped,
                   "error_share": _num(s.error_share), "p99_ms": _ms(s.p99_s),
                   "score_delta": _num(s.score_delta_mean), **agreement},
    }  # fmt: skip
    # The shadow runs on the same machine as production: a stall that times out a shadow
    # degrades production too. What counts is the shadow's failures beyond production's.
    prod = arm_figures(look.before, look.after, rollout_id).get("production")
    baseline = (
        prod.degraded_share if prod is not None and math.isfinite(prod.degraded_share) else 0.0
    )
    figures["shadow"]["production_degraded_share"] = _num(baseline)
    # an exposure stand-in without slots (offline simulations) has no off-policy figures
    slots_of = getattr(look.exposure, "off_policy_slots", None)
    off_policy = off_policy_figures(slots_of(rollout_id), alpha) if slots_of else None
    if off_policy is not None:
        figures["off_policy"] = off_policy
    ran = s.compared + s.errors
    excess = (s.error_share if math.isfinite(s.error_share) else 0.0) - baseline
    if ran >= SHADOW_MIN_RUNS and excess > gates.max_error_rate:
        return Verdict("fail", [f"shadow failed {s.error_share:.1%} of {ran:.0f} runs, production "
                                f"degraded {baseline:.1%} (limit +{gates.max_error_rate:.1%})"],
                       figures)  # fmt: skip
    if not look.at_end:
        return Verdict("continue", [], figures)
    if s.compared < step.min_sample:
        return Verdict("inconclusive", [f"only {s.compared:.0f} of {step.min_sample} shadow "
                                        "runs compared"], figures)  # fmt: skip
    reasons = []
    for gate, key, label in (
        (gates.min_final_overlap, ("final", "overlap_at_k"), "final overlap@k"),
        (gates.min_candidate_recall, ("candidates", "recall"), "candidate recall"),
    ):
        if gate is None:
            continue
        value = s.agreement.get(key, math.nan)
        if not value >= gate:  # NaN (never measured) fails the gate too
            return Verdict("fail", [f"shadow {label} {value:.3f} below {gate}"], figures)
        reasons.append(f"{label} {value:.3f} >= {gate}")
    worse = shown_worse(off_policy)
    if gates.off_policy_not_worse and worse:
        return Verdict("fail", [worse], figures)
    if off_policy is not None and "difference" in off_policy:
        d = off_policy["difference"]
        reasons.append(f"off-policy slot click rate candidate - production {d['value']:+.4f} "
                       f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")  # fmt: skip
    return Verdict("pass", [f"{s.compared:.0f} shadow runs compared, {s.error_share:.1%} "
                            f"failed (production degraded {baseline:.1%})", *reasons],
                   figures)  # fmt: skip


def judge_canary(rollout_id: str, step: Step, analysis: Analysis, look: Look) -> Verdict:
    """Canary step: guardrails, then the split, then the online metric."""
    figures: dict[str, Any] = {}
    if look.before is not None and look.after is not None:
        arms = arm_figures(look.before, look.after, rollout_id)
        figures["guardrails"] = {arm: _arm_json(f) for arm, f in arms.items()}
        breach = guardrail_breach(arms, analysis.guardrails)
        if breach:
            return Verdict("fail", [breach], figures)
    if look.exposure is None:
        return Verdict("continue", ["no exposure log"], figures)
    units = {arm: look.exposure.arm_units(rollout_id, arm) for arm in ("production", "canary")}
    users = {arm: int(len(u.requests)) for arm, u in units.items()}
    figures["users"] = users
    srm = srm_sequential_check(
        users, {"canary": step.share, "production": 1.0 - step.share}, alpha=analysis.srm_p
    )
    figures["srm_p"] = srm.p_value
    if srm.mismatch:
        return Verdict("halt", [f"sample ratio mismatch: {users} users for a {step.share:.0%} "
                                f"canary (p={srm.p_value:.2g} < {analysis.srm_p})"],
                       figures)  # fmt: skip
    test = metric_test(units, analysis, look.previous)
    figures["metric"] = _test_json(analysis.metric, units, test)
    verdict = Verdict("continue", [], figures, test)
    described = describe(analysis.metric, test)
    if test.decision == "worse":
        verdict.outcome, verdict.reasons = "fail", [f"{described}: worse than production"]
        return verdict
    if not look.at_end:
        return verdict
    if min(users.values()) < step.min_sample:
        verdict.outcome = "inconclusive"
        verdict.reasons = [f"{users} users per arm, {step.min_sample} needed"]
    elif analysis.require == "better" and test.decision != "better":
        verdict.outcome = "inconclusive"
        verdict.reasons = [f"{described}: not shown better (the plan requires better)"]
    elif analysis.require == "non_inferior" and not test.ci_low > -analysis.margin:
        verdict.outcome = "inconclusive"
        verdict.reasons = [f"{described}: not shown within {analysis.margin:.0%} of production "
                           "(the interval must end above the non-inferiority margin)"]  # fmt: skip
    else:
        verdict.outcome = "pass"
        verdict.reasons = [f"guardrails held; {described}; {users} users"]
    return verdict


def guardrail_breach(arms: dict[str, ArmFigures], g: Guardrails, alpha: float = 0.01) -> str | None:
    """Why the canary breaks a guardrail (None: it holds, or too few requests to say).

    Each guardrail compares the canary with production over the same step (a busy machine
    slows and times out both arms alike) and must be both past its limit and significant, so
    a few unlucky requests at one look do not roll a good model back:

    - error and degraded rates: the canary's always-valid interval (beta-binomial mixture)
      lies above production's observed rate, and the rates differ by more than the limit;
    - latency (once both arms have ``p99_min_requests``): the canary's p99 is over
      production's x ratio + slack, and its mean latency is significantly higher (an
      always-valid test on the histograms' per-request latencies). A p99 of 100 requests is
      their slowest one: the demo's reversed (not slower) ranker was once rolled back on
      "p99 181 vs 74 ms" from about 360 canary requests on a busy machine.
    """
    c, p = arms.get("canary"), arms.get("production")
    if c is None or p is None or c.requests < g.min_requests or p.requests < g.min_requests:
        return None
    for what, c_n, p_n, limit in (
        ("error rate", c.model_errors, p.model_errors, g.max_error_rate),
        ("degraded share", c.degraded, p.degraded, g.max_degraded_increase),
    ):
        c_rate, p_rate = c_n / c.requests, p_n / p.requests
        if c_rate - p_rate > limit and _rate_higher(c_n, c.requests, p_n, p.requests, alpha):
            failed = what == "error rate"
            detail = " (its model failed them; production answered)" if failed else ""
            counts = f"{c.requests:.0f} / {p.requests:.0f} requests"
            return (f"canary {what} {c_rate:.1%} vs production {p_rate:.1%} over {counts} "
                    f"(limit +{limit:.1%}){detail}")  # fmt: skip
    if min(c.requests, p.requests) < g.p99_min_requests:
        return None
    limit_s = p.p99_s * g.max_p99_ratio + g.p99_slack_ms / 1000.0
    if c.p99_s > limit_s and _slower(c.latency, p.latency, alpha):
        return (f"canary p99 {c.p99_s * 1000:.1f} ms vs production {p.p99_s * 1000:.1f} ms (limit "
                f"{limit_s * 1000:.1f} ms = x{g.max_p99_ratio} + {g.p99_slack_ms} ms), mean "
                f"{c.latency.mean * 1000:.1f} vs {p.latency.mean * 1000:.1f} ms")  # fmt: skip
    return None


def _rate_higher(c_events: float, c_n: float, p_events: float, p_n: float,
                 alpha: float) -> bool:  # fmt: skip
    """The canary's always-valid interval (exact, so a rate of 0 or 1 is fine: a canary failing
    every request after a crash has no variance to test) lies above production's rate."""
    canary = bernoulli_confidence_sequence(int(c_events), int(c_n), alpha=alpha)
    return canary.low > p_events / p_n


def _slower(canary: Histogram, production: Histogram, alpha: float) -> bool:
    """An always-valid test says the canary's mean latency is higher (per-request latencies
    at their bucket's midpoint plus the bucket's own spread, width^2 / 12; the +Inf bucket at
    its lower bound)."""
    stats = [_histogram_stats(h) for h in (production, canary)]
    if min(s.n for s in stats) < 2:
        return False
    test = msprt(stats[0], stats[1], alpha=alpha, min_sample=2, higher_is_better=False)
    return test.decision == "worse"


def _histogram_stats(h: Histogram) -> ArmStats:
    counts = np.diff(np.asarray((0.0, *h.cumulative)))
    bounds = np.asarray(h.bounds, dtype=np.float64)
    lower = np.concatenate(([0.0], bounds[:-1]))
    mids = np.where(np.isinf(bounds), lower, (lower + np.where(np.isinf(bounds), 0, bounds)) / 2)
    n = float(counts.sum())
    if n < 2:
        return ArmStats(int(n), 0.0, 0.0)
    widths = np.where(np.isinf(bounds), 0.0, np.where(np.isinf(bounds), 0, bounds) - lower)
    mean = float((counts * mids).sum() / n)
    var = float((counts * (mids - mean) ** 2).sum() / (n - 1) + (counts * widths**2).sum() / n / 12)
    return ArmStats(int(n), mean, var)


def unit_values(units: Any, metric: str) -> np.ndarray:
    """Each user's value of ``metric`` (users without a denominator are left out)."""
    num_name, den_name = METRIC_PARTS[metric]
    num = np.asarray(getattr(units, num_name), dtype=np.float64)
    den = np.asarray(getattr(units, den_name), dtype=np.float64)
    keep = den > 0
    return num[keep] / den[keep]


def metric_test(units: dict[str, Any], analysis: Analysis,
                previous: SequentialResult | None) -> SequentialResult:  # fmt: skip
    """The always-valid test of the canary's lift over production on the plan's metric."""
    control = ArmStats.from_values(unit_values(units["production"], analysis.metric))
    treatment = ArmStats.from_values(unit_values(units["canary"], analysis.metric))
    try:
        return msprt_relative(control, treatment, alpha=analysis.alpha,
                              min_sample=analysis.min_units, previous=previous)  # fmt: skip
    except ValueError:  # an arm shrank since the last look (evicted users): start afresh
        return msprt_relative(control, treatment, alpha=analysis.alpha,
                              min_sample=analysis.min_units)  # fmt: skip


def describe(metric: str, t: SequentialResult) -> str:
    """``clicks_per_request -12.0% [-20.1%, -3.9%], p=0.003``."""
    if not math.isfinite(t.estimate):
        return f"{metric}: no lift yet"
    return (f"{metric} {t.estimate:+.1%} [{t.ci_low:+.1%}, {t.ci_high:+.1%}], "
            f"always-valid p={t.p_value:.3g}")  # fmt: skip


def _test_json(metric: str, units: dict[str, Any], t: SequentialResult) -> dict[str, Any]:
    means = {}
    for arm, u in units.items():
        values = unit_values(u, metric)
        means[arm] = float(values.mean()) if len(values) else None
    return {"name": metric, "lift": _num(t.estimate), "ci_low": _num(t.ci_low),
            "ci_high": _num(t.ci_high), "p_value": _num(t.p_value), "decision": t.decision,
            "mean": means}  # fmt: skip


def _arm_json(f: ArmFigures) -> dict[str, Any]:
    return {"requests": f.requests, "error_rate": _num(f.error_rate),
            "degraded_share": _num(f.degraded_share), "p50_ms": _ms(f.p50_s),
            "p99_ms": _ms(f.p99_s)}  # fmt: skip


def _num(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def _ms(seconds: float) -> float | None:
    return round(seconds * 1000.0, 3) if math.isfinite(seconds) else None
