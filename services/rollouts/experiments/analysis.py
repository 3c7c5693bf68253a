"""analyse: one look at a running experiment, from its exposure (served ⋈ events, per user).

Units are users, counted from the first list they were served in the experiment (the exposure
join only credits requests whose ``arms`` name it: triggered analysis). Per arm: users,
requests, impressions, clicks, likes, watch time; the metrics clicks, likes and watch seconds
per user and CTR (clicks per impression, a ratio: user-level delta method, ``shared.stats.
ratio``). Against the first arm (the control), for every metric:

- an always-valid interval and p-value for the relative lift (mSPRT, ``msprt_relative``),
  carried from look to look, so the analysis can be read every day without inflating errors;
- the fixed-horizon estimate, and for the primary metric the CUPED-adjusted one, with each
  user's clicks before the experiment as the covariate (``pre_period_s`` of events read
  before the start) and the variance reduction it bought;
- the minimum detectable effect at the users seen so far (80% power, two-sided α).

Plus the sample-ratio check of users per arm against the weights (chi-square, mismatch at
p < 0.001), and for an interleaving experiment two reads of the credited clicks (clicks on
neutral items, which both rankers proposed in one round, credit neither team):

- ``graded``, the primary read: each user's credit margin (B's credited clicks minus A's, 0
  for a user with none), its mean with the always-valid interval and p-value
  (``sequential_graded_test``, carried from look to look; the ``winner`` comes from it), the
  fixed-horizon t-test beside it, and B's share of the credited clicks
  (``shared.stats.interleaving_graded``);
- ``test``: the per-user preference (the team with more credited clicks) with its always-valid
  interval for the share preferring B, the sign test and Δ (``shared.stats.interleaving``).

The graded read keeps how much a user preferred a team, which the sign test drops: on the
simulator the sign test needs about 1.3x its users for the same power (docs/experiments.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from services.rollouts.exposure_join import NEUTRAL_TEAM, UnitArrays
from shared.stats.cuped import cuped_arm_stats, cuped_estimate, cuped_theta
from shared.stats.interleaving import count_preferences, preference_delta, preference_test
from shared.stats.interleaving_graded import (
    graded_preference_test,
    margin_stats,
    sequential_graded_test,
)
from shared.stats.power import mde_means
from shared.stats.ratio import summarize
from shared.stats.sequential import (
    ArmStats,
    RateInterval,
    SequentialResult,
    bernoulli_confidence_sequence,
    msprt_relative,
)
from shared.stats.srm import srm_check

PER_USER = {"clicks_per_user": "clicks", "likes_per_user": "likes", "watch_s_per_user": "watch_s"}
METRICS = (*PER_USER, "ctr")
INTERLEAVED = "interleaved"
# The always-valid preference test mixes over Beta(100, 100) (sd 0.035 around 1/2): shares of
# 0.5-0.6 are what interleaving sees (loadtests/experiment_sensitivity.py measured its daily-
# look A/A false-positive rate at 0.014, against 0.22 for the sign test read every day).
PREFERENCE_PRIOR = (100.0, 100.0)


class ExperimentExposure(Protocol):
    """What the analysis reads (services.rollouts.exposure.ExposureLog provides it)."""

    def arm_units(self, rollout_id: str, arm: str) -> UnitArrays:
        """Per-user totals of one arm."""
        ...

    def pre_period(self, rollout_id: str, user_ids: Any) -> Any:
        """Each user's clicks before the experiment began."""
        ...

    def team_clicks(self, rollout_id: str, teams: tuple[str, ...]) -> tuple[Any, Any]:
        """Users of interleaved lists and their clicks per team (NEUTRAL_TEAM: on neutral items)."""
        ...

    def by_day(self, rollout_id: str) -> dict[str, dict[int, tuple[int, int]]]:
        """Requests and clicks by arm and whole days since the user's first exposure."""
        ...

    def list_figures(self, rollout_id: str, arm: str) -> dict[str, Any]:
        """Coverage, diversity and latency of one arm's lists (services.rollouts.list_stats)."""
        ...


@dataclass(frozen=True)
class AnalysisSpec:
    """What to analyse: the experiment's arms (the first is the control) and its metrics."""

    experiment_id: str
    arms: tuple[tuple[str, float], ...]  # (name, weight)
    kind: str = "ab"
    primary: str = "clicks_per_user"
    alpha: float = 0.05
    srm_alpha: float = 0.001
    min_users: int = 20  # per arm, before any test is computed
    # Why the split cannot be checked (weights changed: assigned users kept the old ones)
    srm_skipped: str = ""


@dataclass
class Carried:
    """What one look passes to the next: each running sequential test."""

    tests: dict[tuple[str, str], SequentialResult] = field(default_factory=dict)
    preference: RateInterval | None = None  # interleaving: the always-valid share preferring b
    graded: SequentialResult | None = None  # interleaving: the always-valid mean credit margin
    # CUPED's slope per arm, fixed at the first look with enough users: the sequential test
    # then runs on one fixed transformation of each user's metric (a strict martingale)
    cuped_theta: dict[str, float] = field(default_factory=dict)


def _per_user(units: UnitArrays, metric: str) -> NDArray[np.float64]:
    values: NDArray[np.float64] = np.asarray(getattr(units, PER_USER[metric]), dtype=np.float64)
    return values


def _arm_stats(units: UnitArrays, metric: str) -> ArmStats:
    """An arm's per-user statistics of ``metric`` (CTR through its linearisation)."""
    if metric == "ctr":
        s = summarize(units.clicks, units.impressions)
        if not s.available:
            return ArmStats(0, 0.0, 0.0)
        return ArmStats(s.n_users, s.mean, s.unit_variance)
    return ArmStats.from_values(_per_user(units, metric)) if len(units) else ArmStats(0, 0.0, 0.0)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _totals(units: UnitArrays) -> dict[str, Any]:
    n = len(units)
    clicks, impressions = int(units.clicks.sum()), int(units.impressions.sum())
    return {
        "users": n, "requests": int(units.requests.sum()), "impressions": impressions,
        "clicks": clicks, "likes": int(units.likes.sum()),
        "watch_s": round(float(units.watch_s.sum()), 1),
        "ctr": _num(clicks / impressions) if impressions else None,
        **{m: _num(float(_per_user(units, m).mean())) if n else None for m in PER_USER},
    }  # fmt: skip


def analyse(spec: AnalysisSpec, exposure: ExperimentExposure, carried: Carried | None = None,
            ) -> dict[str, Any]:  # fmt: skip
    """The figures of one look (JSON-ready); ``carried`` is updated for the next look."""
    carried = carried if carried is not None else Carried()
    if spec.kind == "interleaving":
        return _interleaving(spec, exposure, carried)
    names = [name for name, _ in spec.arms]
    units = {name: exposure.arm_units(spec.experiment_id, name) for name in names}
    out: dict[str, Any] = {
        "kind": "ab",
        "arms": {
            n: {**_totals(u), "lists": exposure.list_figures(spec.experiment_id, n)}
            for n, u in units.items()
        },  # fmt: skip
        "srm": _srm(spec, {n: len(u) for n, u in units.items()}),
        "comparisons": {},
        "novelty": _novelty(names, exposure.by_day(spec.experiment_id)),
    }
    control = names[0]
    for arm in names[1:]:
        out["comparisons"][arm] = _compare(spec, exposure, units[control], units[arm], arm,
                                           carried)  # fmt: skip
        out["comparisons"][arm]["lists"] = compare_lists(out["arms"][control]["lists"],
                                                         out["arms"][arm]["lists"])  # fmt: skip
    return out


def compare_lists(control: dict[str, Any], treatment: dict[str, Any]) -> dict[str, Any]:
    """The treatment's lists against the control's: coverage and p99 as ratios, diversity as a
    difference with a normal interval (lists as units: the gateway scores each list alone)."""
    out: dict[str, Any] = {}
    for key in ("distinct_items", "latency_p99_ms", "latency_p50_ms"):
        c, t = control.get(key), treatment.get(key)
        out[f"{key}_ratio"] = _num(t / c) if c and t is not None else None
    c, t = control.get("diversity"), treatment.get("diversity")
    cse, tse = control.get("diversity_se"), treatment.get("diversity_se")
    if c is not None and t is not None and cse is not None and tse is not None:
        se = math.hypot(cse, tse)
        z = NormalDist().inv_cdf(0.975)
        out["diversity_difference"] = {"value": _num(t - c), "ci_low": _num(t - c - z * se),
                                       "ci_high": _num(t - c + z * se)}  # fmt: skip
    return out


def _novelty(names: list[str], by_day: dict[str, dict[int, tuple[int, int]]]) -> list[Any]:
    """Clicks per request by days since first exposure, each arm's lift on the control's.

    A lift that starts high and falls with the days is a novelty effect (a decaying one a
    primacy effect the other way): the users' first days overstate the long-run change."""
    control = by_day.get(names[0], {})
    days = sorted({d for arm in names for d in by_day.get(arm, {})})
    rows = []
    for day in days:
        row: dict[str, Any] = {"day": day}
        base_req, base_clicks = control.get(day, (0, 0))
        base = base_clicks / base_req if base_req else None
        for arm in names:
            req, clicks = by_day.get(arm, {}).get(day, (0, 0))
            row[arm] = {"requests": req, "clicks_per_request": _num(clicks / req) if req else None}
            if arm != names[0] and req and base:
                row[arm]["lift"] = _num((clicks / req) / base - 1)
        rows.append(row)
    return rows


def _srm(spec: AnalysisSpec, users: dict[str, int]) -> dict[str, Any]:
    if spec.srm_skipped:
        return {"checked": False, "reason": spec.srm_skipped, "mismatch": False,
                "p_value": None, "observed": users}  # fmt: skip
    srm = srm_check(users, dict(spec.arms), alpha=spec.srm_alpha)
    return {"checked": True, "p_value": _num(srm.p_value), "mismatch": srm.mismatch,
            "observed": srm.observed,
            "expected": {k: round(v, 1) for k, v in srm.expected.items()}}  # fmt: skip


def _compare(spec: AnalysisSpec, exposure: ExperimentExposure, c: UnitArrays, t: UnitArrays,
             arm: str, carried: Carried) -> dict[str, Any]:  # fmt: skip
    figures: dict[str, Any] = {}
    enough = min(len(c), len(t)) >= spec.min_users
    for metric in METRICS:
        cs, ts = _arm_stats(c, metric), _arm_stats(t, metric)
        row: dict[str, Any] = {
            "control": _num(cs.mean) if cs.n else None,
            "treatment": _num(ts.mean) if ts.n else None,
        }
        if enough and cs.n >= 2 and ts.n >= 2 and cs.mean > 0:
            previous = carried.tests.get((arm, metric))
            test = msprt_relative(cs, ts, alpha=spec.alpha, previous=previous)
            carried.tests[(arm, metric)] = test
            row.update(lift=_num(test.estimate), ci_low=_num(test.ci_low),
                       ci_high=_num(test.ci_high), p_value=_num(test.p_value),
                       decision=test.decision)  # fmt: skip
            sd = math.sqrt(cs.var) if cs.var > 0 else 0.0
            if sd > 0:
                mde = mde_means(cs.n, sd, alpha=spec.alpha, ratio=ts.n / cs.n)
                row["mde_relative"] = _num(mde / cs.mean)
        figures[metric] = row
    if enough and spec.primary in PER_USER:
        figures["cuped"] = _cuped(spec, exposure, c, t, arm, carried)
    return figures


def _cuped(spec: AnalysisSpec, exposure: ExperimentExposure, c: UnitArrays, t: UnitArrays,
           arm: str, carried: Carried) -> dict[str, Any]:  # fmt: skip
    """The primary metric CUPED-adjusted on each user's pre-period clicks: the fixed-horizon
    figures, and the always-valid test on the adjusted values (``sequential``)."""
    xc = np.asarray(exposure.pre_period(spec.experiment_id, c.user_ids), dtype=np.float64)
    xt = np.asarray(exposure.pre_period(spec.experiment_id, t.user_ids), dtype=np.float64)
    yc, yt = _per_user(c, spec.primary), _per_user(t, spec.primary)
    r = cuped_estimate(yc, xc, yt, xt, alpha=spec.alpha)
    base = float(yc.mean()) or math.nan
    theta = carried.cuped_theta.setdefault(arm, cuped_theta(yc, xc, yt, xt))
    adjusted = cuped_arm_stats(yc, xc, yt, xt, theta=theta)
    sequential: dict[str, Any] = {"theta": _num(theta)}
    if adjusted[0].mean > 0 and adjusted[1].mean > 0:
        test = msprt_relative(*adjusted, alpha=spec.alpha,
                              previous=carried.tests.get((arm, "cuped")))  # fmt: skip
        carried.tests[(arm, "cuped")] = test
        sequential.update(lift=_num(test.estimate), ci_low=_num(test.ci_low),
                          ci_high=_num(test.ci_high), p_value=_num(test.p_value),
                          decision=test.decision)  # fmt: skip
    return {
        "sequential": sequential,
        "metric": spec.primary, "theta": _num(r.theta),
        "estimate": _num(r.estimate), "ci_low": _num(r.ci_low), "ci_high": _num(r.ci_high),
        "p_value": _num(r.p_value), "lift": _num(r.estimate / base),
        "unadjusted_estimate": _num(r.unadjusted_estimate),
        "variance_reduction": _num(r.variance_reduction),
        "users_with_pre_period": int((xc > 0).sum() + (xt > 0).sum()),
    }  # fmt: skip


def _interleaving(spec: AnalysisSpec, exposure: ExperimentExposure,
                  carried: Carried) -> dict[str, Any]:  # fmt: skip
    a, b = (name for name, _ in spec.arms)
    users = exposure.arm_units(spec.experiment_id, INTERLEAVED)
    ids, clicks = exposure.team_clicks(spec.experiment_id, (a, b, NEUTRAL_TEAM))
    clicks = np.asarray(clicks, dtype=np.int64).reshape(len(ids), 3)
    # users shown interleaved lists but who clicked nothing credited: ties
    counts = count_preferences(ids, clicks[:, 0], clicks[:, 1])
    ties = len(users) - counts.a - counts.b
    out: dict[str, Any] = {
        "kind": "interleaving", "teams": [a, b], "users": len(users),
        "arms": {INTERLEAVED: _totals(users)},
        "credited_clicks": {a: int(clicks[:, 0].sum()), b: int(clicks[:, 1].sum())},
        "neutral_clicks": int(clicks[:, 2].sum()),
        "preferences": {a: counts.a, b: counts.b, "ties": ties},
        "primary_test": "graded",
    }  # fmt: skip
    out["graded"] = _graded(spec, ids, clicks, len(users), carried)
    out["winner"] = out["graded"].get("winner")
    if counts.a + counts.b:
        out["test"] = _sign(spec, counts.a, counts.b, max(ties, 0), carried)
    return out


def _graded(
    spec: AnalysisSpec, ids: Any, clicks: NDArray[np.int64], n_users: int, carried: Carried
) -> dict[str, Any]:
    """The mean per-user credit margin (b - a): always valid (the verdict) and fixed-horizon."""
    a, b = (name for name, _ in spec.arms)
    margins = margin_stats(ids, clicks[:, 0], clicks[:, 1], n_users=max(n_users, len(ids)))
    fixed = graded_preference_test(
        margins, (clicks[:, 0].sum(), clicks[:, 1].sum()), alpha=spec.alpha
    )
    seq = sequential_graded_test(margins, alpha=spec.alpha, previous=carried.graded)
    carried.graded = seq
    share = fixed.credit_share_b
    return {
        "users": margins.n, "mean_margin": _num(margins.mean),
        "credit_share": {b: _num(share), a: _num(1 - share)},
        # always valid (read at every look): the verdict comes from these
        "ci_low": _num(seq.ci_low), "ci_high": _num(seq.ci_high), "p_value": _num(seq.p_value),
        "winner": {"better": b, "worse": a}.get(seq.decision),
        # the t-test, valid for one look at a planned sample size only
        "t_test_p": _num(fixed.p_value), "fixed_ci": [_num(fixed.ci_low), _num(fixed.ci_high)],
    }  # fmt: skip


def _sign(
    spec: AnalysisSpec, prefs_a: int, prefs_b: int, ties: int, carried: Carried
) -> dict[str, Any]:
    """The share of users preferring b: always valid (beta-binomial) and the sign test."""
    a, b = (name for name, _ in spec.arms)
    test = preference_test(prefs_a, prefs_b, alpha=spec.alpha)
    delta = preference_delta(prefs_a, prefs_b, ties, alpha=spec.alpha)
    previous = carried.preference
    if previous is not None and previous.n > prefs_a + prefs_b:
        previous = None  # fewer users than before: the exposure was rebuilt
    seq = bernoulli_confidence_sequence(
        prefs_b, prefs_a + prefs_b, alpha=spec.alpha, prior=PREFERENCE_PRIOR, previous=previous
    )
    carried.preference = seq
    verdict = seq.versus(0.5)
    return {
        "share_preferring": {b: _num(test.share_b), a: _num(1 - test.share_b)},
        # always valid (read at every look)
        "ci_low": _num(seq.low), "ci_high": _num(seq.high),
        "winner": {"above": b, "below": a}.get(verdict),
        # fixed-horizon figures, valid for one look at a planned sample size only
        "sign_test_p": _num(test.p_value), "fixed_ci": [_num(test.ci_low), _num(test.ci_high)],
        "delta": _num(delta.delta),
    }  # fmt: skip


def spec_of(experiment_id: str, arms: Sequence[tuple[str, float]], kind: str = "ab",
            metrics: Mapping[str, Any] | None = None,
            srm_skipped: str = "") -> AnalysisSpec:  # fmt: skip
    """An AnalysisSpec from an experiment's declared arms and metrics."""
    primary = (metrics or {}).get("primary", "clicks_per_user")
    if primary not in METRICS:
        primary = "clicks_per_user"
    return AnalysisSpec(experiment_id, tuple(arms), kind, primary, srm_skipped=srm_skipped)
