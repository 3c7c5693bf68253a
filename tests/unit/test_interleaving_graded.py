"""The graded interleaving test (shared/stats/interleaving_graded.py) and its always-valid form
(``msprt_paired``): hand-computed cases, scipy as the reference, the A/A false-positive rate
over thousands of experiments, and where it beats the sign test."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from shared.stats import (
    ArmStats,
    graded_preference_test,
    margin_stats,
    msprt_paired,
    sequential_graded_test,
    team_draft_from_flips,
)

log = logging.getLogger(__name__)
CATALOGUE = [f"item{i}" for i in range(16)]


def test_credit_table_by_hand() -> None:
    """Three users with margins 1, 2, 3: mean 2, sd 1, t = 2 sqrt(3) on 2 degrees of freedom,
    whose two-sided p is 1 - t / sqrt(t^2 + 2) = 0.074180."""
    users = ["u1", "u1", "u2", "u3", "u3"]
    clicks_a = [0, 1, 0, 1, 0]
    clicks_b = [1, 1, 2, 2, 2]
    margins = margin_stats(users, clicks_a, clicks_b)
    assert (margins.n, margins.mean, margins.var) == (3, 2.0, 1.0)
    result = graded_preference_test(margins, (sum(clicks_a), sum(clicks_b)))
    t = 2 * math.sqrt(3)
    assert result.p_value == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-12)
    assert result.p_value == pytest.approx(0.074180, abs=1e-6)
    half = 4.302653 / math.sqrt(3)  # t_{0.975, 2}
    assert (result.ci_low, result.ci_high) == pytest.approx((2 - half, 2 + half), abs=1e-5)
    assert result.credit_share_b == 0.8 and result.winner == "tie"


def test_users_without_credit_count_as_zero_margins_and_match_scipy() -> None:
    margins = margin_stats(["u1", "u2", "u3"], [0, 0, 0], [1, 2, 3], n_users=5)
    assert (margins.n, margins.mean) == (5, 1.2)
    assert margins.var == pytest.approx(1.7)  # (14 - 5 * 1.44) / 4
    result = graded_preference_test(margins)
    reference = stats.ttest_1samp([1, 2, 3, 0, 0], 0.0)
    ci = reference.confidence_interval(0.95)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    rng = np.random.default_rng(0)
    values = rng.poisson(1.0, 500) - rng.poisson(0.8, 500)
    result = graded_preference_test(margin_stats(np.arange(500), np.zeros(500), values))
    assert result.p_value == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue, rel=1e-9)
    assert result.winner == "b"


def test_edges_and_bad_input() -> None:
    empty = graded_preference_test(margin_stats([], [], [], n_users=0))
    assert empty.n_users == 0 and empty.p_value == 1.0 and empty.winner == "tie"
    nobody_clicked = graded_preference_test(margin_stats([], [], [], n_users=40))
    assert nobody_clicked.n_users == 40 and nobody_clicked.p_value == 1.0
    assert math.isnan(nobody_clicked.credit_share_b)
    with pytest.raises(ValueError, match="differ in length"):
        margin_stats([1, 2], [0, 1], [1])
    with pytest.raises(ValueError, match="n_users"):
        margin_stats([1, 2], [0, 1], [1, 1], n_users=1)
    with pytest.raises(ValueError, match="alpha"):
        graded_preference_test(ArmStats(10, 0.1, 1.0), alpha=1.5)


def test_msprt_paired_by_hand() -> None:
    """n 100, mean 0.3, variance 1: v = 0.01 and tau = 0.1 sd, tau^2 = 0.01; log LR =
    0.5 log(1/2) + 0.0009 / 0.0004 = 1.903426, p = 0.149057; half-width
    sqrt(0.02 (2 log 20 + log 2)) = 0.365640."""
    result = msprt_paired(ArmStats(100, 0.3, 1.0))
    assert result.tau == pytest.approx(0.1)
    assert result.p_value == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 2.25)), rel=1e-12)
    assert result.p_value == pytest.approx(0.149057, abs=1e-6)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        (0.3 - 0.365640, 0.3 + 0.365640), abs=1e-6
    )
    assert result.decision == "inconclusive" and result.n_control == result.n_treatment == 100
    later = msprt_paired(ArmStats(400, 0.3, 1.0), previous=result)
    assert later.tau == result.tau and later.decision == "better" and later.ci_low > 0
    assert msprt_paired(ArmStats(400, -0.3, 1.0)).decision == "worse"
    assert msprt_paired(ArmStats(50, 0.3, 1.0)).decision == "inconclusive"  # below min_sample


def _drafts(rng: np.random.Generator, size: int, k: int) -> tuple[NDArray[np.bool_], ...]:
    """(team b, neutral) per position for ``size`` drafts of overlapping lists, each flip vector
    beside its negation, so no team is favoured."""
    by_b, neutral = [], []
    for _ in range(size // 2):
        a, b = list(rng.permutation(CATALOGUE)), list(rng.permutation(CATALOGUE))
        b[:3] = a[:3]  # a shared top: contested rounds, neutral positions
        b = list(dict.fromkeys(b + CATALOGUE))
        flips = (rng.random(k) < 0.5).tolist()
        for f in (flips, [not x for x in flips]):
            d = team_draft_from_flips(a, b, k, f)
            by_b.append([t == "b" for t in d.teams])
            neutral.append([p in d.neutral for p in range(k)])
    return np.array(by_b), np.array(neutral)


def _aa_margins(rng: np.random.Generator, experiments: int, users: int) -> NDArray[np.int64]:
    """Per experiment and user, the credited margin of A/A traffic: up to 4 impressions per user
    (geometric), clicks by position only, neutral positions credited to neither team."""
    k = 10
    by_b, neutral = _drafts(rng, 600, k)
    sign = np.where(neutral, 0, np.where(by_b, 1, -1)).astype(np.int8)
    requests = rng.geometric(0.5, (experiments, users))
    margin = np.zeros((experiments, users), dtype=np.int64)
    for request in range(4):  # one impression slot at a time: float32 uniforms, small arrays
        shown = sign[rng.integers(0, len(sign), (experiments, users))]
        clicks = rng.random((experiments, users, k), dtype=np.float32) < 0.4 / np.arange(1, k + 1)
        margin += np.where(requests > request, (clicks * shown).sum(axis=2), 0)
    return margin


def test_false_positive_rate_of_the_graded_test_and_its_sequential_form() -> None:
    """4,000 A/A experiments of 400 users, read once (the t-test) and at 8 looks, 50 users more
    at each (the analysis' sequential_graded_test: msprt_paired from its minimum of 100 users,
    tau fixed at its first look)."""
    rng = np.random.default_rng(7)
    experiments, users, looks = 4000, 400, 8
    margin = _aa_margins(rng, experiments, users).astype(np.float64)
    n = users
    mean, var = margin.mean(axis=1), margin.var(axis=1, ddof=1)
    p = 2 * stats.t(df=n - 1).sf(np.abs(mean) / np.sqrt(var / n))
    fixed = float(np.mean(p <= 0.05))
    # always valid: at each look on the users so far, chained through previous
    ends = np.arange(1, looks + 1) * (users // looks)
    sums, squares = (
        np.cumsum(margin, axis=1)[:, ends - 1],
        np.cumsum(margin**2, axis=1)[:, ends - 1],
    )
    decided = 0
    for total, square in zip(sums.tolist(), squares.tolist(), strict=True):
        result = None
        for n_seen, s, q in zip(ends.tolist(), total, square, strict=True):
            result = sequential_graded_test(ArmStats.from_sums(n_seen, s, q), previous=result)
        decided += result is not None and result.decision != "inconclusive"
    sequential = decided / experiments
    se = math.sqrt(0.05 * 0.95 / experiments)
    ties = float(np.mean(margin == 0))
    log.info(
        "A/A graded: t-test FPR %.4f (+- %.4f), sequential over %d looks %.4f; %.0f%% ties",
        fixed,
        1.96 * se,
        looks,
        sequential,
        100 * ties,
    )
    assert 0.05 - 4 * se <= fixed <= 0.05 + 3 * se
    assert sequential <= 0.05 + 3 * se
    assert 0.2 < ties < 0.8  # the neutral positions and clickless users are there


def _sign_p(prefs_a: NDArray[np.int64], prefs_b: NDArray[np.int64]) -> NDArray[np.float64]:
    """The exact two-sided binomial test of share 1/2, vectorised (symmetric, so a doubled tail)."""
    n = prefs_a + prefs_b
    p: NDArray[np.float64] = np.minimum(
        1.0, 2 * stats.binom.cdf(np.minimum(prefs_a, prefs_b), n, 0.5)
    )
    return p


def test_graded_beats_the_sign_test_when_users_differ_in_how_much_they_click() -> None:
    """Users with 1 + Poisson(gamma of shape 0.5, mean 3) credited clicks, each credited to B
    with probability 0.53: the sign test weighs a user with 20 clicks like one with 1."""
    rng = np.random.default_rng(8)
    experiments, users = 1500, 500
    clicks = 1 + rng.poisson(rng.gamma(0.5, 6.0, (experiments, users)))
    to_b = rng.binomial(clicks, 0.53)
    margin = (2 * to_b - clicks).astype(np.float64)
    mean, var = margin.mean(axis=1), margin.var(axis=1, ddof=1)
    graded = float(
        np.mean(2 * stats.t(df=users - 1).sf(np.abs(mean) / np.sqrt(var / users)) <= 0.05)
    )
    sign = float(np.mean(_sign_p((margin < 0).sum(axis=1), (margin > 0).sum(axis=1)) <= 0.05))
    log.info("power at 500 users: graded %.3f, sign test %.3f", graded, sign)
    assert graded > sign + 0.15, (graded, sign)
