"""Off-policy estimators (shared/stats/off_policy.py) on a bandit whose true value is known.

The bandit: 10 equally likely contexts, 5 actions, click probability q[c, a]. The logging
policy is a softmax of noisy scores (propensities 0.04-0.51), the evaluation policy a sharper
softmax of the true click rates, so its value sum_c sum_a e[c, a] q[c, a] / 10 is exact and
differs from the logging policy's. Each seed logs 2,000 slots.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from shared.stats import (
    PolicyEstimate,
    deterministic_target_probability,
    dr,
    ips,
    snips,
)

log = logging.getLogger(__name__)
CONTEXTS, ACTIONS, SLOTS, SEEDS = 10, 5, 2000, 500
Q = np.random.default_rng(100).uniform(0.02, 0.4, (CONTEXTS, ACTIONS))


def _softmax(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


LOGGING = _softmax(np.random.default_rng(101).normal(0.0, 0.6, (CONTEXTS, ACTIONS)))
TARGET = _softmax(8.0 * Q)
TRUE_VALUE = float((TARGET * Q).sum(axis=1).mean())


@dataclass(frozen=True)
class Log:
    """One seed's logged slots."""

    context: NDArray[np.int64]
    action: NDArray[np.int64]
    reward: NDArray[np.float64]

    @property
    def propensity(self) -> NDArray[np.float64]:
        return LOGGING[self.context, self.action]

    def target(self, policy: NDArray[np.float64] = TARGET) -> NDArray[np.float64]:
        return policy[self.context, self.action]


def _log(seed: int, n: int = SLOTS) -> Log:
    rng = np.random.default_rng(seed)
    context = rng.integers(0, CONTEXTS, n)
    cumulative = LOGGING.cumsum(axis=1)[context]
    action = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), ACTIONS - 1)
    reward = (rng.random(n) < Q[context, action]).astype(np.float64)
    return Log(context, action, reward)


def _perfect_dr(data: Log) -> PolicyEstimate:
    t = (TARGET * Q).sum(axis=1)[data.context]
    return dr(data.reward, data.propensity, data.target(), Q[data.context, data.action], t)


def _estimates() -> dict[str, list[PolicyEstimate]]:
    out: dict[str, list[PolicyEstimate]] = {"ips": [], "snips": [], "dr": [], "dr_bad_model": []}
    for seed in range(SEEDS):
        data = _log(seed)
        args = (data.reward, data.propensity, data.target())
        out["ips"].append(ips(*args))
        out["snips"].append(snips(*args))
        out["dr"].append(_perfect_dr(data))
        constant = np.full(data.reward.size, 0.5)  # a useless reward model
        out["dr_bad_model"].append(dr(*args, constant, constant))
    return out


@pytest.fixture(scope="module")
def estimates() -> dict[str, list[PolicyEstimate]]:
    return _estimates()


def test_the_bandit_separates_the_policies() -> None:
    logging_value = float((LOGGING * Q).sum(axis=1).mean())
    assert TRUE_VALUE - logging_value > 0.05  # the estimators must move off the logged mean
    assert 0.04 < LOGGING.min() and LOGGING.max() < 0.6


@pytest.mark.parametrize("name", ["ips", "snips", "dr", "dr_bad_model"])
def test_unbiased_and_covering_over_500_seeds(
    estimates: dict[str, list[PolicyEstimate]], name: str
) -> None:
    values = np.array([e.value for e in estimates[name]])
    cover = float(np.mean([e.ci_low <= TRUE_VALUE <= e.ci_high for e in estimates[name]]))
    log.info(
        "%s: mean %.5f (true %.5f), sd %.5f, 95%% coverage %.3f, ess %.0f of %d",
        name, values.mean(), TRUE_VALUE, values.std(ddof=1), cover,
        np.mean([e.effective_sample_size for e in estimates[name]]), SLOTS,
    )  # fmt: skip
    assert abs(values.mean() - TRUE_VALUE) < 4 * values.std(ddof=1) / math.sqrt(SEEDS)
    assert 0.90 <= cover <= 0.99


def _per_slot_variance(terms_mean: NDArray[np.float64], noise: NDArray[np.float64]) -> float:
    """Var of one slot's term: spread of its mean over (context, action), plus click noise."""
    weight = LOGGING / CONTEXTS  # P(context, logged action)
    mean = float((weight * terms_mean).sum())
    return float((weight * (terms_mean - mean) ** 2).sum() + (weight * noise).sum())


def test_variances_match_theory_and_snips_and_dr_lower_them(
    estimates: dict[str, list[PolicyEstimate]],
) -> None:
    var = {name: float(np.var([e.value for e in es], ddof=1)) for name, es in estimates.items()}
    w = TARGET / LOGGING
    clicks = Q * (1 - Q)
    ips_theory = _per_slot_variance(w * Q, w**2 * clicks) / SLOTS
    # with the true model the term's mean is t(context) and only the click noise is weighted
    t = np.broadcast_to((TARGET * Q).sum(axis=1, keepdims=True), Q.shape)
    dr_theory = _per_slot_variance(t, w**2 * clicks) / SLOTS
    log.info(
        "variance relative to IPS: %s; theory: dr %.3f; measured / theory: ips %.3f, dr %.3f",
        {k: round(v / var["ips"], 3) for k, v in var.items()}, dr_theory / ips_theory,
        var["ips"] / ips_theory, var["dr"] / dr_theory,
    )  # fmt: skip
    tolerance = 3 * math.sqrt(2 / SEEDS)  # sd of a sample variance over 500 seeds: 6%
    assert var["ips"] / ips_theory == pytest.approx(1.0, abs=tolerance)
    assert var["dr"] / dr_theory == pytest.approx(1.0, abs=tolerance)
    assert var["snips"] < 0.9 * var["ips"]
    assert var["dr"] < 0.9 * var["ips"]


def test_deterministic_target_policy() -> None:
    greedy = Q.argmax(axis=1)
    true_value = float(Q.max(axis=1).mean())
    values = []
    for seed in range(200):
        data = _log(seed)
        e = deterministic_target_probability(data.action, greedy[data.context])
        values.append(ips(data.reward, data.propensity, e).value)
    assert abs(np.mean(values) - true_value) < 4 * np.std(values, ddof=1) / math.sqrt(200)


def test_by_hand() -> None:
    reward, propensity, target = [1.0, 0.0, 1.0], [0.5, 0.25, 1.0], [1.0, 0.5, 0.0]
    # weights 2, 2, 0
    assert ips(reward, propensity, target).value == pytest.approx(2 / 3)
    assert snips(reward, propensity, target).value == pytest.approx(0.5)
    # terms 0.6 + 2 (1 - 0.5), 0.6 + 2 (0 - 0.5), 0.6 + 0
    assert dr(reward, propensity, target, [0.5] * 3, [0.6] * 3).value == pytest.approx(0.6)
    result = ips(reward, propensity, target)
    assert result.effective_sample_size == pytest.approx(16 / 8)  # (2 + 2)^2 / (4 + 4)
    assert result.std_error == pytest.approx(np.std([2.0, 0.0, 0.0], ddof=1) / math.sqrt(3))
    assert result.ci_high - result.value == pytest.approx(1.959964 * result.std_error)
    on_policy = ips(reward, propensity, propensity)
    assert on_policy.effective_sample_size == 3 and on_policy.value == pytest.approx(2 / 3)


def test_propensities_below_the_floor_are_clipped_and_counted() -> None:
    result = ips([1.0, 1.0, 0.0], [0.0001, 0.5, 0.002], [1.0, 1.0, 1.0])
    assert result.n_clipped == 1 and result.max_weight == pytest.approx(1000.0)
    assert result.value == pytest.approx((1000 + 2) / 3)
    assert ips([1.0], [0.0001], [1.0], propensity_floor=1e-5).n_clipped == 0


def test_snips_without_any_weight_has_no_value() -> None:
    result = snips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0])
    assert math.isnan(result.value) and result.effective_sample_size == 0.0
    assert (result.ci_low, result.ci_high) == (-math.inf, math.inf)


def test_bootstrap_interval_is_seeded_and_agrees_with_the_normal_one() -> None:
    data = _log(7)
    args = (data.reward, data.propensity, data.target())
    boot = snips(*args, bootstrap=500, rng=np.random.default_rng(3))
    again = snips(*args, bootstrap=500, rng=np.random.default_rng(3))
    normal = snips(*args)
    assert boot == again and boot.interval == "bootstrap"
    assert snips(*args, bootstrap=500) == snips(*args, bootstrap=500)  # seed 0 by default
    assert boot.std_error == pytest.approx(normal.std_error, rel=0.15)
    assert boot.ci_low == pytest.approx(normal.ci_low, abs=0.3 * normal.std_error)
    assert boot.ci_high == pytest.approx(normal.ci_high, abs=0.3 * normal.std_error)


def test_bootstrap_coverage() -> None:
    runs, rng = 100, np.random.default_rng(8)
    cover = 0
    for seed in range(runs):
        data = _log(1000 + seed, n=1000)
        result = ips(data.reward, data.propensity, data.target(), bootstrap=200, rng=rng)
        cover += result.ci_low <= TRUE_VALUE <= result.ci_high
    log.info("bootstrap (200 resamples) IPS coverage over %d seeds: %.2f", runs, cover / runs)
    assert 0.87 <= cover / runs <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"propensity": [0.5, 0.0]}, "propensity"),
        ({"propensity": [0.5, 1.2]}, "propensity"),
        ({"propensity": [0.5]}, "propensity has 1 slots"),
        ({"target_probability": [0.5, 0.5, 0.5]}, "target_probability has 3"),
        ({"target_probability": [0.5, 1.5]}, "target_probability"),
        ({"reward": [1.0, math.nan]}, "reward"),
        ({"reward_hat_logged": [0.1]}, "reward_hat_logged"),
        ({"reward_hat_target": [0.1, math.inf]}, "reward_hat_target"),
        ({"reward": [], "propensity": [], "target_probability": []}, "empty"),
        ({"alpha": 1.0}, "alpha"),
        ({"propensity_floor": 0.0}, "propensity_floor"),
        ({"bootstrap": -1}, "bootstrap"),
    ],
)
def test_bad_input_is_refused_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    good: dict[str, object] = {
        "reward": [1.0, 0.0],
        "propensity": [0.5, 0.5],
        "target_probability": [1.0, 0.0],
        "reward_hat_logged": [0.2, 0.2],
        "reward_hat_target": [0.3, 0.3],
    }
    with pytest.raises(ValueError, match=field):
        dr(**(good | kwargs))
    with pytest.raises(ValueError, match="target_action"):
        deterministic_target_probability([1, 2], [1])


def test_the_paired_difference_of_two_policies_is_unbiased_and_covers() -> None:
    """Two deterministic policies (the best action per context, and the second best) on the
    same logs: the paired IPS difference is centred on the true gap and its interval covers it
    at about 95% over many seeds; a policy against itself is exactly 0."""
    from shared.stats.off_policy import ips_difference

    order = np.argsort(-Q, axis=1)
    best, second = order[:, 0], order[:, 1]
    gap = float((Q[np.arange(CONTEXTS), best] - Q[np.arange(CONTEXTS), second]).mean())
    values, covered = [], []
    for seed in range(300):
        data = _log(seed)
        e_best = deterministic_target_probability(data.action, best[data.context])
        e_second = deterministic_target_probability(data.action, second[data.context])
        d = ips_difference(data.reward, data.propensity, e_best, e_second)
        values.append(d.value)
        covered.append(d.ci_low <= gap <= d.ci_high)
        if seed == 0:
            same = ips_difference(data.reward, data.propensity, e_best, e_best)
            assert same.value == 0.0 and same.ci_low == same.ci_high == 0.0
    v = np.array(values)
    assert abs(v.mean() - gap) < 4 * v.std(ddof=1) / math.sqrt(len(v))
    assert 0.90 <= float(np.mean(covered)) <= 0.99
