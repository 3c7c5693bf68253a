"""Sample-ratio mismatch checks: scipy's values on hand-built counts, then measured error rates."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import stats

from shared.stats import srm_check, srm_sequential_check

log = logging.getLogger(__name__)
HALF = {"control": 0.5, "treatment": 0.5}


def measured(what: str, value: float) -> float:
    """Log a measured rate (see them with -o log_cli=true --log-cli-level=INFO) and return it."""
    log.info("measured %s: %.4f", what, value)
    return value


def mc_bound(rate: float, runs: int) -> float:
    """``rate`` plus three Monte-Carlo standard errors of it over ``runs`` runs."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / runs)


@pytest.mark.parametrize(
    ("counts", "shares"),
    [
        ({"control": 5050, "treatment": 4950}, HALF),
        ({"production": 9420, "canary": 580}, {"production": 0.95, "canary": 0.05}),
        ({"a": 331, "b": 340, "c": 298}, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
        ({"a": 120, "b": 260, "c": 640}, {"a": 0.1, "b": 0.3, "c": 0.6}),
    ],
)
def test_p_value_and_statistic_equal_scipy_chisquare(
    counts: dict[str, int], shares: dict[str, float]
) -> None:
    total = sum(counts.values())
    expected = [total * shares[arm] for arm in counts]
    want = stats.chisquare(list(counts.values()), expected)
    result = srm_check(counts, shares)
    assert result.p_value == pytest.approx(want.pvalue, rel=1e-12)
    assert result.chi2 == pytest.approx(want.statistic, rel=1e-12)
    assert result.observed == counts
    assert result.expected == pytest.approx(dict(zip(counts, expected, strict=True)))


def test_a_5050_to_4950_split_is_fine_and_5500_to_4500_is_a_mismatch() -> None:
    fine = srm_check({"control": 5050, "treatment": 4950}, HALF)
    assert not fine.mismatch and fine.p_value == pytest.approx(0.3173, abs=1e-4)  # chi2 = 1
    bad = srm_check({"control": 5500, "treatment": 4500}, HALF)
    assert bad.mismatch and bad.chi2 == pytest.approx(100.0) and bad.p_value < 1e-20
    assert (fine.alpha, bad.method) == (0.001, "chisquare")


def test_shares_are_weights_normalised_to_one() -> None:
    counts = {"production": 9420, "canary": 580}
    as_shares = srm_check(counts, {"production": 0.95, "canary": 0.05})
    as_percent = srm_check(counts, {"production": 95, "canary": 5})
    assert as_percent.p_value == pytest.approx(as_shares.p_value)
    assert as_percent.expected == pytest.approx({"production": 9500.0, "canary": 500.0})


def test_an_arm_with_no_units_is_a_mismatch_and_a_missing_arm_counts_as_zero() -> None:
    dead = srm_check({"control": 1000, "treatment": 0}, HALF)
    assert dead.mismatch
    missing = srm_check({"control": 1000}, HALF)
    assert missing.observed == {"control": 1000, "treatment": 0}
    assert missing.p_value == dead.p_value


def test_no_units_at_all_is_no_mismatch() -> None:
    result = srm_check({}, HALF)
    assert (result.p_value, result.chi2, result.mismatch) == (1.0, 0.0, False)


def test_a_single_arm_cannot_mismatch() -> None:
    result = srm_check({"production": 1234}, {"production": 1.0})
    assert (result.p_value, result.mismatch) == (1.0, False)


def test_units_in_an_arm_planned_at_zero_are_a_mismatch() -> None:
    shares = {"production": 1.0, "canary": 0.0}  # canary not started yet
    leaked = srm_check({"production": 5000, "canary": 3}, shares)
    assert (leaked.p_value, leaked.chi2, leaked.mismatch) == (0.0, math.inf, True)
    quiet = srm_check({"production": 5000, "canary": 0}, shares)
    assert not quiet.mismatch and quiet.expected == {"production": 5000.0, "canary": 0.0}
    assert srm_sequential_check({"production": 5000, "canary": 3}, shares).mismatch


@pytest.mark.parametrize(
    ("counts", "shares", "message"),
    [
        ({"contorl": 10}, HALF, "missing from expected_shares"),
        ({"control": 10}, {}, "empty"),
        ({"control": 10}, {"control": -0.5, "treatment": 1.5}, "finite number >= 0"),
        ({"control": 10}, {"control": math.nan, "treatment": 0.5}, "finite number >= 0"),
        ({"control": 10}, {"control": 0.0, "treatment": 0.0}, "all zero"),
        ({"control": -1}, HALF, "integer >= 0"),
        ({"control": 10.5}, HALF, "integer >= 0"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(
    counts: dict[str, int], shares: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        srm_check(counts, shares)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_alpha_outside_zero_one_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        srm_check({"control": 10, "treatment": 10}, HALF, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        srm_sequential_check({"control": 10, "treatment": 10}, HALF, alpha=alpha)


def test_sequential_p_value_equals_the_dirichlet_multinomial_bayes_factor_by_hand() -> None:
    # Lindon & Malek (2022): BF = B(k p + x) / B(k p) / prod p_i^x_i, B the multivariate beta
    x, p, k = np.array([5200, 4800]), np.array([0.5, 0.5]), 1000.0

    def log_beta(a: np.ndarray) -> float:
        return float(np.sum([math.lgamma(v) for v in a]) - math.lgamma(float(np.sum(a))))

    log_bf = log_beta(k * p + x) - log_beta(k * p) - float(np.sum(x * np.log(p)))
    result = srm_sequential_check({"control": 5200, "treatment": 4800}, HALF)
    assert result.p_value == pytest.approx(math.exp(-log_bf), rel=1e-9)
    assert result.method == "dirichlet-multinomial"
    assert result.chi2 == pytest.approx(16.0)  # still reported, for the reader


def test_sequential_check_edges_and_concentration() -> None:
    assert srm_sequential_check({}, HALF).p_value == 1.0
    assert srm_sequential_check({"a": 99}, {"a": 1.0}).p_value == 1.0
    assert srm_sequential_check({"control": 5000, "treatment": 0}, HALF).mismatch
    with pytest.raises(ValueError, match="concentration"):
        srm_sequential_check({"control": 1}, HALF, concentration=0.0)


# --- measured error rates -------------------------------------------------------------------


def test_false_positive_rate_at_alpha_0001_is_small() -> None:
    runs = 4000
    control = np.random.default_rng(21).binomial(10_000, 0.5, runs)
    flagged = [srm_check({"control": int(c), "treatment": 10_000 - int(c)}, HALF) for c in control]
    rate = measured(
        "SRM chi-square false positives, 1 look", np.mean([r.mismatch for r in flagged])
    )
    assert rate <= mc_bound(0.001, runs)  # at most ~0.0025 here


def test_power_on_a_52_to_48_split_of_10000_units() -> None:
    runs = 1000
    control = np.random.default_rng(22).binomial(10_000, 0.52, runs)
    counts = [{"control": int(c), "treatment": 10_000 - int(c)} for c in control]
    power = measured(
        "SRM chi-square power 52/48, 10k", np.mean([srm_check(c, HALF).mismatch for c in counts])
    )
    assert power >= 0.70  # normal theory: P(Z > 3.29 - 4) = 0.76
    seq = measured(
        "SRM sequential power 52/48, 10k",
        np.mean([srm_sequential_check(c, HALF).mismatch for c in counts]),
    )
    assert 0.3 <= seq < power  # the price of validity under any number of looks


def test_sequential_power_on_a_52_to_48_split_by_20000_units() -> None:
    runs = 1000
    control = np.random.default_rng(23).binomial(20_000, 0.52, runs)
    counts = [{"control": int(c), "treatment": 20_000 - int(c)} for c in control]
    power = measured(
        "SRM sequential power 52/48, 20k",
        np.mean([srm_sequential_check(c, HALF).mismatch for c in counts]),
    )
    assert power >= 0.85


def test_repeated_looks_inflate_chi_square_but_not_the_sequential_check() -> None:
    # a correct 50/50 split looked at 20 times (every 500 units); alpha 0.05 so that 1,000 runs
    # measure the rates (the martingale argument is the same at 0.001)
    runs, looks, batch, alpha = 1000, 20, 500, 0.05
    rng = np.random.default_rng(24)
    control = np.cumsum(rng.binomial(batch, 0.5, (runs, looks)), axis=1)
    n = batch * np.arange(1, looks + 1)
    observed = np.stack([control, n - control], axis=-1).astype(float)
    chi2_p = stats.chisquare(observed, np.repeat(n[:, None] / 2, 2, axis=1), axis=-1).pvalue
    chi2_ever = measured("SRM chi-square A/A, 20 looks, alpha 0.05", (chi2_p < alpha).any(1).mean())
    seq_ever = measured(
        "SRM sequential A/A, 20 looks, alpha 0.05",
        np.mean(
            [
                any(
                    srm_sequential_check(
                        {"control": int(c), "treatment": int(k - c)}, HALF, alpha=alpha
                    ).mismatch
                    for c, k in zip(row, n, strict=True)
                )
                for row in control
            ]
        ),
    )
    assert chi2_ever > 2 * alpha
    assert seq_ever <= mc_bound(alpha, runs)


def test_chi_square_looked_at_50_times_flags_a_correct_split_ten_times_as_often() -> None:
    # the rollout controller's case: 0.001 per look, 50 looks over 10,000 units
    runs, looks, batch = 20_000, 50, 200
    control = np.cumsum(np.random.default_rng(25).binomial(batch, 0.5, (runs, looks)), axis=1)
    n = batch * np.arange(1, looks + 1)
    observed = np.stack([control, n - control], axis=-1).astype(float)
    p = stats.chisquare(observed, np.repeat(n[:, None] / 2, 2, axis=1), axis=-1).pvalue
    ever = measured("SRM chi-square A/A, 50 looks, alpha 0.001", (p < 0.001).any(1).mean())
    assert ever > 5 * 0.001
