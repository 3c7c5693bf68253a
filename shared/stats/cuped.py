"""CUPED: variance reduction with a pre-experiment covariate (Deng, Xu, Kohavi & Walker 2013).

Each user has the metric Y measured during the experiment and a covariate X measured before it
(the same metric over the weeks before assignment, say). X cannot be moved by the treatment, so
subtracting the part of Y that X predicts leaves the difference in means unbiased and removes
the share rho^2 of its variance that X explains (rho = corr(X, Y) within an arm):

    theta = cov(X, Y) / var(X),   Y' = Y - theta (X - mean(X))

- ``theta`` is the within-arm pooled slope, sum over both arms of sum (x - x_arm)(y - y_arm)
  divided by sum (x - x_arm)^2. A treatment effect on Y therefore cannot leak into it, and the
  estimate is exactly the OLS coefficient of the treatment indicator T in Y ~ 1 + T + (X - x̄)
  (Frisch-Waugh; ``tests/unit/test_stats_cuped.py`` checks it against ``lstsq``). Deng et al.'s
  slope over the concatenated sample differs from it by O(1/n).
- ``mean(X)`` is the grand mean over both arms: it centres Y' without changing the difference.
- The standard error is that of two independent means of Y', sqrt(s'_t^2/n_t + s'_c^2/n_c);
  estimating theta costs O(1/n) relative variance, which it ignores (as Deng et al. do).
- X constant (everyone new, or no pre-period logged) gives theta = 0: CUPED is then the plain
  difference. Users without pre-period activity take X = 0; they stay in the analysis (a
  pre-period indicator as a second covariate would help further; not done here).

``cuped_estimate`` is the fixed-horizon analysis; ``cuped_arm_stats`` returns the adjusted arms as
``ArmStats`` so the always-valid ``msprt`` runs on them. For repeated looks pass a ``theta``
fixed in advance (from the pre-period alone, or the first look) when the strict martingale
argument matters; re-estimating it at each look is valid asymptotically, as theta converges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shared.stats.sequential import ArmStats

DEFAULT_CUPED_ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class CupedResult:
    """Treatment - control on CUPED-adjusted values, beside the unadjusted difference."""

    theta: float  # slope of Y on X, pooled within the arms
    x_mean: float  # grand mean of X that the adjustment centres on
    control: ArmStats  # the adjusted values Y' of each arm
    treatment: ArmStats
    estimate: float  # mean(Y'_t) - mean(Y'_c)
    std_error: float
    ci_low: float  # fixed-horizon normal interval at level 1 - alpha
    ci_high: float
    p_value: float  # two-sided z-test of "no difference"
    unadjusted_estimate: float  # mean(Y_t) - mean(Y_c)
    unadjusted_std_error: float
    alpha: float

    @property
    def variance_reduction(self) -> float:
        """1 - Var(adjusted difference) / Var(unadjusted difference); ~ rho^2."""
        if self.unadjusted_std_error == 0:
            return 0.0
        return 1.0 - (self.std_error / self.unadjusted_std_error) ** 2


def cuped_estimate(
    y_control: ArrayLike,
    x_control: ArrayLike,
    y_treatment: ArrayLike,
    x_treatment: ArrayLike,
    *,
    alpha: float = DEFAULT_CUPED_ALPHA,
    theta: float | None = None,
) -> CupedResult:
    """CUPED-adjusted difference in means, its standard error, interval and p-value."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    yc, xc = _arm(y_control, x_control, "control")
    yt, xt = _arm(y_treatment, x_treatment, "treatment")
    if min(yc.size, yt.size) < 2:
        raise ValueError(f"need >= 2 users per arm, got control {yc.size}, treatment {yt.size}")
    theta, x_mean = _fit(yc, xc, yt, xt, theta)
    control = ArmStats.from_values(yc - theta * (xc - x_mean))
    treatment = ArmStats.from_values(yt - theta * (xt - x_mean))
    estimate = treatment.mean - control.mean
    se = math.sqrt(treatment.var / treatment.n + control.var / control.n)
    raw_se = math.sqrt(float(yt.var(ddof=1)) / yt.size + float(yc.var(ddof=1)) / yc.size)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    if se > 0:
        p = 2 * NormalDist().cdf(-abs(estimate) / se)
    else:  # no variance left: the difference is exact
        p = 1.0 if estimate == 0 else 0.0
    return CupedResult(
        theta=theta,
        x_mean=x_mean,
        control=control,
        treatment=treatment,
        estimate=estimate,
        std_error=se,
        ci_low=estimate - z * se,
        ci_high=estimate + z * se,
        p_value=p,
        unadjusted_estimate=float(yt.mean() - yc.mean()),
        unadjusted_std_error=raw_se,
        alpha=alpha,
    )


def cuped_arm_stats(
    y_control: ArrayLike,
    x_control: ArrayLike,
    y_treatment: ArrayLike,
    x_treatment: ArrayLike,
    *,
    theta: float | None = None,
) -> tuple[ArmStats, ArmStats]:
    """(control, treatment) statistics of the adjusted values, for ``msprt(*cuped_arm_stats(...))``.

    Arms may be small or empty (a sequential test's early looks): theta is then 0 until the
    covariate varies within an arm.
    """
    yc, xc = _arm(y_control, x_control, "control")
    yt, xt = _arm(y_treatment, x_treatment, "treatment")
    theta, x_mean = _fit(yc, xc, yt, xt, theta)
    return (
        ArmStats.from_values(yc - theta * (xc - x_mean)),
        ArmStats.from_values(yt - theta * (xt - x_mean)),
    )


def cuped_theta(
    y_control: ArrayLike, x_control: ArrayLike, y_treatment: ArrayLike, x_treatment: ArrayLike
) -> float:
    """The within-arm pooled slope cov(X, Y) / var(X); 0 when X does not vary within an arm."""
    yc, xc = _arm(y_control, x_control, "control")
    yt, xt = _arm(y_treatment, x_treatment, "treatment")
    return _fit(yc, xc, yt, xt, None)[0]


def _fit(
    yc: NDArray[np.float64],
    xc: NDArray[np.float64],
    yt: NDArray[np.float64],
    xt: NDArray[np.float64],
    theta: float | None,
) -> tuple[float, float]:
    """(theta, grand mean of X); a given theta is checked and kept."""
    n = xc.size + xt.size
    x_mean = float((xc.sum() + xt.sum()) / n) if n else 0.0
    if theta is not None:
        if not math.isfinite(theta):
            raise ValueError(f"theta must be finite, got {theta!r}")
        return float(theta), x_mean
    sxy = sxx = 0.0
    for y, x in ((yc, xc), (yt, xt)):
        if x.size:
            dx = x - x.mean()
            sxy += float(dx @ (y - y.mean()))
            sxx += float(dx @ dx)
    # Relative to X's scale: rounding leaves ~1e-16 x^2 of "variance" in a constant X.
    scale = float(np.abs(np.concatenate([xc, xt])).max(initial=0.0)) ** 2 * n
    return (sxy / sxx if sxx > 1e-12 * scale else 0.0), x_mean


def _arm(y: ArrayLike, x: ArrayLike, arm: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One arm's (Y, X) as float arrays, checked: same length, finite."""
    ya = np.asarray(y, dtype=np.float64).ravel()
    xa = np.asarray(x, dtype=np.float64).ravel()
    if ya.size != xa.size:
        raise ValueError(f"y_{arm} has {ya.size} users but x_{arm} has {xa.size}")
    for name, values in ((f"y_{arm}", ya), (f"x_{arm}", xa)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    return ya, xa
