"""CUPED (shared/stats/cuped.py): equal to OLS, removes rho^2 of the variance, stays unbiased.

Two populations: Gaussian (X, Y) with a chosen within-arm correlation rho, where the variance
reduction must be rho^2; and clicks per user, Poisson before and during the experiment around
a per-user Gamma rate, 30% of users new (X = 0), where the effect is a 5% lift.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from numpy.typing import NDArray

from shared.stats import ArmStats, cuped_arm_stats, cuped_estimate, cuped_theta, msprt

log = logging.getLogger(__name__)
CLICKS_RHO2 = 3.15**2 / (7.14 * 7.5)
Arms = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


def _gaussian(rng: np.random.Generator, n: int, rho: float, effect: float = 0.0) -> Arms:
    """(y_c, x_c, y_t, x_t): corr(X, Y) = rho within each arm, Y's sd 1, X's mean 3."""
    x = rng.normal(3.0, 2.0, (2, n))
    noise = rng.normal(0.0, 1.0, (2, n))
    y = 1.0 + rho * (x - 3.0) / 2.0 + math.sqrt(1 - rho**2) * noise
    y[1] += effect
    return y[0], x[0], y[1], x[1]


def _clicks(rng: np.random.Generator, n: int, lift: float = 0.0) -> Arms:
    """Clicks per user over two weeks before and two weeks during; 30% of users are new.

    Per-user rate r ~ Gamma(2, 1.5): cov(X, Y) = 0.7 Var(r) = 3.15, Var(X) = 7.14, Var(Y) = 7.5,
    so rho^2 = 3.15^2 / (7.14 * 7.5) = 0.185 (the new users' X = 0 dilutes it).
    """
    rate = rng.gamma(2.0, 1.5, (2, n))
    x = rng.poisson(rate) * (rng.random((2, n)) > 0.3)
    y = rng.poisson(rate * np.array([[1.0], [1.0 + lift]]))
    return y[0].astype(float), x[0].astype(float), y[1].astype(float), x[1].astype(float)


def test_estimate_equals_the_ols_coefficient_of_treatment() -> None:
    yc, xc, yt, xt = _clicks(np.random.default_rng(3), 500, lift=0.1)
    y = np.concatenate([yc, yt])
    x = np.concatenate([xc, xt])
    t = np.r_[np.zeros(yc.size), np.ones(yt.size)]
    design = np.column_stack([np.ones_like(y), t, x - x.mean()])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    result = cuped_estimate(yc, xc, yt, xt)
    assert result.estimate == pytest.approx(coef[1], rel=1e-10)
    assert result.theta == pytest.approx(coef[2], rel=1e-10)
    assert result.theta == pytest.approx(cuped_theta(yc, xc, yt, xt))


@pytest.mark.parametrize("rho", [0.3, 0.7, 0.9])
def test_variance_reduction_is_rho_squared(rho: float) -> None:
    arms = _gaussian(np.random.default_rng(int(rho * 10)), 20_000, rho, effect=0.05)
    result = cuped_estimate(*arms)
    log.info(
        "rho %.1f: variance reduction %.4f (rho^2 %.2f)", rho, result.variance_reduction, rho**2
    )
    assert result.variance_reduction == pytest.approx(rho**2, abs=0.015)
    assert result.theta == pytest.approx(rho / 2.0, abs=0.01)  # cov / var = rho * 1 * 2 / 4


def test_unbiased_with_calibrated_errors_over_many_seeds() -> None:
    lift, runs = 0.05, 1000
    results = [cuped_estimate(*_clicks(np.random.default_rng(s), 400, lift)) for s in range(runs)]
    true = 3.0 * lift  # E[rate] = 2 * 1.5
    est = np.array([r.estimate for r in results])
    raw = np.array([r.unadjusted_estimate for r in results])
    se = np.array([r.std_error for r in results])
    cover = np.mean([r.ci_low <= true <= r.ci_high for r in results])
    reduction = np.mean([r.variance_reduction for r in results])
    log.info(
        "clicks: mean estimate %.4f (true %.3f), var ratio %.3f, coverage %.3f, reduction %.3f",
        est.mean(), true, est.var(ddof=1) / raw.var(ddof=1), cover, reduction,
    )  # fmt: skip
    assert abs(est.mean() - true) < 4 * est.std(ddof=1) / math.sqrt(runs)
    assert np.mean(se**2) / est.var(ddof=1) == pytest.approx(1.0, abs=0.1)
    assert 0.95 - 3 * math.sqrt(0.95 * 0.05 / runs) <= cover <= 0.95 + 0.02
    # the realised reduction of the estimates' spread matches the reported one
    assert 1 - est.var(ddof=1) / raw.var(ddof=1) == pytest.approx(reduction, abs=0.05)
    assert reduction == pytest.approx(CLICKS_RHO2, abs=0.03)


def test_constant_covariate_gives_the_plain_difference() -> None:
    yc, _, yt, _ = _gaussian(np.random.default_rng(5), 300, 0.5, effect=0.2)
    # 7/3 is not exact in binary: the rounding must not pass for variance
    result = cuped_estimate(yc, np.zeros(300), yt, np.full(300, 7.0 / 3.0))
    assert result.theta == 0.0
    assert result.estimate == pytest.approx(yt.mean() - yc.mean())
    assert result.std_error == pytest.approx(result.unadjusted_std_error)
    assert result.variance_reduction == pytest.approx(0.0, abs=1e-12)


def test_users_without_pre_period_activity_keep_their_place() -> None:
    yc, xc, yt, xt = _clicks(np.random.default_rng(6), 5000)
    assert np.mean(xc == 0) > 0.3  # the new users, plus returning users who had no clicks
    result = cuped_estimate(yc, xc, yt, xt)
    assert result.control.n == 5000 and result.treatment.n == 5000
    assert result.variance_reduction == pytest.approx(CLICKS_RHO2, abs=0.03)


def test_given_theta_is_used_as_is() -> None:
    yc, xc, yt, xt = _gaussian(np.random.default_rng(7), 200, 0.6)
    result = cuped_estimate(yc, xc, yt, xt, theta=0.1)
    x_mean = np.concatenate([xc, xt]).mean()
    assert result.theta == 0.1
    assert result.estimate == pytest.approx(
        (yt - 0.1 * (xt - x_mean)).mean() - (yc - 0.1 * (xc - x_mean)).mean()
    )


def test_adjusted_arm_stats_run_the_sequential_test_with_a_narrower_interval() -> None:
    yc, xc, yt, xt = _gaussian(np.random.default_rng(8), 3000, 0.8, effect=0.08)
    control, treatment = cuped_arm_stats(yc, xc, yt, xt)
    theta = cuped_theta(yc, xc, yt, xt)
    x_mean = np.concatenate([xc, xt]).mean()
    expected = ArmStats.from_values(yt - theta * (xt - x_mean))
    assert treatment.mean == pytest.approx(expected.mean) and treatment.var == pytest.approx(
        expected.var
    )
    tau = 0.05
    adjusted = msprt(control, treatment, tau=tau)
    plain = msprt(ArmStats.from_values(yc), ArmStats.from_values(yt), tau=tau)
    width, plain_width = adjusted.ci_high - adjusted.ci_low, plain.ci_high - plain.ci_low
    log.info("msprt interval width: CUPED %.4f, plain %.4f", width, plain_width)
    assert width < 0.7 * plain_width  # sd falls by sqrt(1 - 0.64) = 0.6
    assert adjusted.p_value < plain.p_value


def test_arm_stats_of_empty_or_tiny_arms_do_not_fail() -> None:
    control, treatment = cuped_arm_stats([], [], [1.0], [2.0])
    assert control == ArmStats(0, 0.0, 0.0) and treatment == ArmStats(1, 1.0, 0.0)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (([1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]), "x_control"),
        (([1.0, 2.0], [1.0, 2.0], [1.0, math.nan], [1.0, 2.0]), "y_treatment"),
        (([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [math.inf, 2.0]), "x_treatment"),
        (([1.0], [1.0], [1.0, 2.0], [1.0, 2.0]), "2 users per arm"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    args: tuple[list[float], list[float], list[float], list[float]], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        cuped_estimate(*args)
