"""Planning (shared/stats/power.py): textbook values, inverse consistency, power by simulation."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from shared.stats import (
    SampleSize,
    mde_means,
    mde_preference,
    mde_proportions,
    sample_size_means,
    sample_size_paired,
    sample_size_preference,
    sample_size_proportions,
)

log = logging.getLogger(__name__)
Z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)


def test_means_at_a_fifth_of_a_standard_deviation_need_392_per_arm() -> None:
    n = sample_size_means(0.2, 1.0)
    assert n.control == pytest.approx(392.44, abs=0.01)  # 2 (1.95996 + 0.84162)^2 / 0.04
    assert n.treatment == n.control and n.total == 2 * 393
    assert sample_size_means(0.5, 2.5).control == pytest.approx(n.control)  # only d matters
    assert sample_size_means(-0.2, 1.0) == n  # two-sided: the sign does not matter


def test_a_paired_mean_needs_half_the_two_sample_arm() -> None:
    """m / sd = 0.2: (1.95996 + 0.84162)^2 / 0.04 = 196.22 units, each in both arms."""
    assert sample_size_paired(0.2, 1.0) == pytest.approx(196.22, abs=0.01)
    assert sample_size_paired(-0.5, 2.5) == pytest.approx(sample_size_means(0.2, 1.0).control / 2)
    with pytest.raises(ValueError, match="mean"):
        sample_size_paired(0.0, 1.0)
    with pytest.raises(ValueError, match="sd"):
        sample_size_paired(0.1, 0.0)


def test_proportions_ten_to_twelve_percent_match_power_prop_test() -> None:
    # R: power.prop.test(p1 = 0.10, p2 = 0.12, power = 0.8)$n = 3840.847
    relative = sample_size_proportions(0.10, 0.20)
    absolute = sample_size_proportions(0.10, 0.02, relative=False)
    assert relative.control == pytest.approx(3840.847, abs=0.01)
    assert absolute.control == pytest.approx(relative.control)
    # statsmodels' route (Cohen's h with NormalIndPower) is a different approximation: 3,835
    h = 2 * math.asin(math.sqrt(0.12)) - 2 * math.asin(math.sqrt(0.10))
    assert relative.control == pytest.approx(2 * (Z / h) ** 2, rel=0.005)


def test_simulated_z_test_has_the_planned_power() -> None:
    reps, rng = 4000, np.random.default_rng(11)
    n = math.ceil(sample_size_proportions(0.10, 0.20).control)
    c, t = rng.binomial(n, 0.10, reps) / n, rng.binomial(n, 0.12, reps) / n
    pooled = (c + t) / 2
    z = (t - c) / np.sqrt(pooled * (1 - pooled) * 2 / n)
    power = float(np.mean(np.abs(z) > stats.norm.ppf(0.975)))
    log.info("simulated power at n = %d per arm: %.3f", n, power)
    assert power == pytest.approx(0.8, abs=3 * math.sqrt(0.8 * 0.2 / reps))


def test_unequal_allocation_puts_the_variance_on_the_small_arm() -> None:
    canary = sample_size_means(0.2, 1.0, ratio=1 / 19)  # 5% canary against 95% production
    assert canary.treatment == pytest.approx(canary.control / 19)
    assert 1 / canary.control + 1 / canary.treatment == pytest.approx(2 / 392.444, rel=1e-4)
    assert canary.total > sample_size_means(0.2, 1.0).total


@pytest.mark.parametrize("ratio", [1.0, 0.25, 3.0])
@pytest.mark.parametrize("mde", [0.01, 0.2, 1.5])
def test_mde_of_the_means_sample_size_is_the_mde(mde: float, ratio: float) -> None:
    n = sample_size_means(mde, 1.3, ratio=ratio, alpha=0.01, power=0.9)
    assert mde_means(n.control, 1.3, ratio=ratio, alpha=0.01, power=0.9) == pytest.approx(mde)


@pytest.mark.parametrize(
    ("baseline", "lift", "relative", "ratio"),
    [
        (0.10, 0.20, True, 1.0),
        (0.10, -0.20, True, 1.0),
        (0.02, 0.05, True, 0.25),
        (0.50, 0.03, False, 2.0),
        (0.95, -0.10, False, 1.0),
    ],
)
def test_mde_of_the_proportions_sample_size_is_the_lift(
    baseline: float, lift: float, relative: bool, ratio: float
) -> None:
    n = sample_size_proportions(baseline, lift, relative=relative, ratio=ratio).control
    found = mde_proportions(baseline, n, relative=relative, increase=lift > 0, ratio=ratio)
    assert found == pytest.approx(lift, rel=1e-9)


def test_mde_is_nan_when_no_rate_reaches_the_power() -> None:
    assert math.isnan(mde_proportions(0.5, 5))
    assert math.isnan(mde_preference(3))


def test_sign_test_sample_size_has_the_planned_exact_power() -> None:
    n_float = sample_size_preference(0.55)
    assert n_float == pytest.approx((1.959964 / 2 + 0.841621 * math.sqrt(0.2475)) ** 2 / 0.0025)
    n = math.ceil(n_float)
    k = np.arange(n + 1)
    reject = 2 * np.minimum(stats.binom.cdf(k, n, 0.5), stats.binom.sf(k - 1, n, 0.5)) <= 0.05
    power = float(stats.binom.pmf(k, n, 0.55)[reject].sum())
    log.info("exact sign-test power at n = %d users with a preference: %.3f", n, power)
    assert power == pytest.approx(0.8, abs=0.02)


def test_ties_inflate_the_users_to_enrol() -> None:
    informative = sample_size_preference(0.6)
    assert sample_size_preference(0.6, tie_share=0.75) == pytest.approx(4 * informative)
    assert sample_size_preference(0.4) == pytest.approx(informative)  # two-sided
    enrolled = sample_size_preference(0.53, tie_share=0.6)
    assert mde_preference(enrolled, tie_share=0.6) == pytest.approx(0.53)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: sample_size_means(0.0, 1.0), "mde"),
        (lambda: sample_size_means(0.1, 0.0), "sd"),
        (lambda: sample_size_means(0.1, 1.0, alpha=0.0), "alpha"),
        (lambda: sample_size_means(0.1, 1.0, power=1.0), "power"),
        (lambda: sample_size_means(0.1, 1.0, ratio=0.0), "ratio"),
        (lambda: sample_size_proportions(1.2, 0.1), "baseline"),
        (lambda: sample_size_proportions(0.6, 1.0), "treatment rate"),
        (lambda: sample_size_preference(0.5), "no preference"),
        (lambda: sample_size_preference(0.6, tie_share=1.0), "tie_share"),
        (lambda: mde_proportions(0.1, 0), "n_control"),
    ],
)
def test_bad_plans_are_refused_naming_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call()


def test_sample_size_total_rounds_each_arm_up() -> None:
    assert SampleSize(10.2, 3.0).total == 14
