"""User-level ratio metrics (clicks per impression, watch seconds per request): delta method.

Users are split into arms by a sticky hash of the user id, so the independent unit is the
user, not the request or the impression: one user's impressions share that user's taste, and
treating them as independent trials understates the variance (``tests/unit/test_stats_ratio.py``
measures it: with per-user click rates ~ Beta(1, 9) and ~20 impressions per user the binomial
formula is 2.7-2.9x too small). An arm is
therefore summarised from one (numerator, denominator) pair per user, e.g. (clicks,
impressions), and its metric is the ratio of sums

    R = sum(x) / sum(y)

whose variance, by the delta method (first-order Taylor expansion of x̄ / ȳ around the means;
Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", eq. 4; Kohavi, Tang &
Xu 2020, "Trustworthy Online Controlled Experiments", ch. 18), is

    Var(R) ≈ (s_x² - 2 R s_xy + R² s_y²) / (n ȳ²) = sum((x_i - R y_i)²) / ((n - 1) n ȳ²)

with sample (co)variances over the n users (ddof 1). A per-user mean (watch seconds per user)
is the special case y_i = 1.

Users whose denominator is 0 (assigned, but shown nothing) are **kept**: they are randomised
units like any other, and dropping them would condition on an outcome the treatment may move
(a model that returns empty lists more often would look better by losing its unhappy users).
Their numerator still counts in sum(x) (normally 0; a positive one, a click without an
impression, points at a logging join bug) and they are counted in ``n_zero_denominator``.

Two arms are compared by ``difference``: the absolute difference R_t - R_c with variance
Var_t + Var_c (the arms are independent), or the relative one R_t / R_c - 1 with the delta-method
variance Var_t / R_c² + R_t² Var_c / R_c⁴. An arm with fewer than 2 users, or with no
denominator at all, has no variance estimate: its variance is inf and ``available`` is False,
and so is any difference involving it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """One arm's ratio metric: users, sum(numerator) / sum(denominator), and its variance."""

    n_users: int
    mean: float  # NaN when no user has a denominator
    variance: float  # delta-method variance of ``mean``; inf when not estimable
    n_zero_denominator: int = 0  # users kept in n_users who contributed no denominator

    @property
    def available(self) -> bool:
        """Whether the mean and its variance can be used (>= 2 users, some denominator)."""
        return self.n_users >= 2 and math.isfinite(self.mean) and math.isfinite(self.variance)

    @property
    def unit_variance(self) -> float:
        """The per-user variance of the linearised metric, n * Var(mean).

        What a test written for per-user means expects as the sample variance: a mean-based
        test fed (n_users, mean, unit_variance) computes exactly this arm's ``variance``.
        """
        return self.n_users * self.variance


@dataclass(frozen=True, slots=True)
class Estimate:
    """A difference between two arms and its variance, or why it is not available."""

    point: float  # treatment - control, or treatment / control - 1 when relative
    variance: float
    relative: bool
    reason: str = ""  # empty when available

    @property
    def available(self) -> bool:
        """Whether ``point`` and ``variance`` are usable."""
        return not self.reason

    @property
    def standard_error(self) -> float:
        """sqrt(variance)."""
        return math.sqrt(self.variance)


def summarize(numerator: ArrayLike, denominator: ArrayLike | None = None) -> ArmSummary:
    """An arm's summary from one numerator and one denominator per user (default: 1 each)."""
    x = _per_user(numerator, "numerator")
    y = np.ones_like(x) if denominator is None else _per_user(denominator, "denominator")
    if x.shape != y.shape:
        raise ValueError(f"need one denominator per user: {x.size} numerators, {y.size}")
    if np.any(y < 0):
        raise ValueError("denominators must be >= 0 (counts, exposures, requests)")
    n = int(x.size)
    zero_den = int(np.count_nonzero(y == 0))
    sum_y = float(y.sum())
    if sum_y == 0:
        return ArmSummary(n, math.nan, math.inf, zero_den)
    ratio = float(x.sum()) / sum_y
    if n < 2:
        return ArmSummary(n, ratio, math.inf, zero_den)
    # residuals of the linearisation: their mean is 0 by construction of the ratio
    resid = x - ratio * y
    var = float(resid @ resid) * n / ((n - 1) * sum_y**2)
    return ArmSummary(n, ratio, var, zero_den)


def summarize_sums(
    n_users: int,
    sum_num: float,
    sum_den: float,
    sum_num_sq: float,
    sum_den_sq: float,
    sum_num_den: float,
    n_zero_denominator: int = 0,
) -> ArmSummary:
    """The same summary from per-user sums (what a SQL ``GROUP BY arm`` over users returns).

    The arguments are n, sum x_i, sum y_i, sum x_i², sum y_i², sum x_i y_i over the arm's users.
    """
    if n_users < 0 or sum_den < 0 or sum_num_sq < 0 or sum_den_sq < 0:
        raise ValueError("counts, sums of squares and sum_den must be >= 0")
    if sum_den == 0:
        return ArmSummary(n_users, math.nan, math.inf, n_zero_denominator)
    ratio = sum_num / sum_den
    if n_users < 2:
        return ArmSummary(n_users, ratio, math.inf, n_zero_denominator)
    # sum (x - R y)^2 expanded; round-off can take an exact 0 slightly negative
    resid_sq = max(0.0, sum_num_sq - 2 * ratio * sum_num_den + ratio**2 * sum_den_sq)
    var = resid_sq * n_users / ((n_users - 1) * sum_den**2)
    return ArmSummary(n_users, ratio, var, n_zero_denominator)


def difference(control: ArmSummary, treatment: ArmSummary, relative: bool = True) -> Estimate:
    """Treatment minus control (or treatment / control - 1 when ``relative``), delta method.

    The relative point is (R_t - R_c) / |R_c|: treatment / control - 1 for the usual positive
    metrics, and still "positive means treatment is larger" for a negative control.
    """
    for name, arm in (("control", control), ("treatment", treatment)):
        if not arm.available:
            why = "fewer than 2 users" if arm.n_users < 2 else "no denominator"
            return Estimate(math.nan, math.inf, relative, f"{name} arm: {why}")
    if not relative:
        return Estimate(treatment.mean - control.mean, treatment.variance + control.variance, False)
    if control.mean == 0:
        return Estimate(math.nan, math.inf, True, "control mean is 0: no relative difference")
    c, t = control.mean, treatment.mean
    var = treatment.variance / c**2 + t**2 * control.variance / c**4
    return Estimate((t - c) / abs(c), var, True)


def _per_user(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value per user (1-D), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has NaN or infinite values")
    return arr
