"""Sample-ratio mismatch: do the units seen per arm match the planned traffic split?

Two checks share one result type:

- ``srm_check``: Pearson's chi-square goodness of fit (``scipy.stats.chisquare``), the check
  GrowthBook, Eppo and Statsig run, flagged at p < 0.001. Valid for **one** look: looked at 50
  times during a rollout it flags a correct split about 10x as often as its alpha (measured: 0.011
  at alpha 0.001, see docs/statistics.md).
- ``srm_sequential_check``: the Dirichlet-multinomial mixture test of Lindon & Malek (2022,
  "Anytime-valid inference for multinomial count data"), valid however often it is looked at, at
  the price of needing more units to catch a given skew.

Shares are weights: they are normalised to sum to 1, so ``{"production": 95, "canary": 5}`` and
``{"production": 0.95, "canary": 0.05}`` mean the same plan. An arm planned at share 0 that
receives units is a mismatch outright (p = 0); one that receives none is left out of the test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

DEFAULT_SRM_ALPHA = 0.001
# Dirichlet prior concentration: the prior's share sd is about sqrt(p(1-p)/k), ~0.016 on a 50/50
# split, sized for the 1-3 point skews that assignment bugs produce. Of k in {10, 100, 1000, 5000}
# it caught a 52/48 split most often (10,000 units looked at 50 times: 47%, the others 26-45%).
DEFAULT_CONCENTRATION = 1000.0

Method = Literal["chisquare", "dirichlet-multinomial"]


@dataclass(frozen=True, slots=True)
class SrmResult:
    """A sample-ratio check: units observed and expected per arm, the p-value and the verdict."""

    p_value: float
    chi2: float
    observed: dict[str, int]
    expected: dict[str, float]
    mismatch: bool
    alpha: float
    method: Method


def srm_check(
    counts: Mapping[str, int],
    expected_shares: Mapping[str, float],
    *,
    alpha: float = DEFAULT_SRM_ALPHA,
) -> SrmResult:
    """Chi-square test of units per arm against the planned shares (valid for a single look)."""
    plan = _plan(counts, expected_shares, alpha)
    obs, exp, _ = plan.tested()
    if plan.unplanned_units:
        p_value = 0.0
    elif obs.size < 2 or obs.sum() == 0:
        p_value = 1.0  # one arm or no units: nothing can be out of proportion
    else:
        p_value = float(stats.chisquare(obs, exp).pvalue)
    return plan.result(p_value, alpha, "chisquare")


def srm_sequential_check(
    counts: Mapping[str, int],
    expected_shares: Mapping[str, float],
    *,
    alpha: float = DEFAULT_SRM_ALPHA,
    concentration: float = DEFAULT_CONCENTRATION,
) -> SrmResult:
    """Always-valid SRM test (Dirichlet-multinomial mixture): safe to check after every batch."""
    if not (math.isfinite(concentration) and concentration > 0):
        raise ValueError(f"concentration must be a positive number, got {concentration!r}")
    plan = _plan(counts, expected_shares, alpha)
    x, _, p = plan.tested()
    if plan.unplanned_units:
        p_value = 0.0
    elif x.size < 2:
        p_value = 1.0
    else:
        # p = 1 / Bayes factor of Dir(k * p) against the planned multinomial; a nonnegative
        # martingale under the plan, so Ville's inequality bounds P(ever <= alpha) by alpha.
        prior = concentration * p
        log_bf = (
            special.gammaln(concentration)
            - special.gammaln(concentration + x.sum())
            + np.sum(special.gammaln(prior + x) - special.gammaln(prior))
            - np.sum(x * np.log(p))
        )
        p_value = min(1.0, math.exp(-float(log_bf)))
    return plan.result(p_value, alpha, "dirichlet-multinomial")


@dataclass(frozen=True, slots=True)
class _Plan:
    """Observed counts and normalised planned shares of every arm, in the plan's order."""

    observed: dict[str, int]
    shares: dict[str, float]

    @property
    def unplanned_units(self) -> bool:
        """Units arrived in an arm planned at share 0."""
        return any(self.observed[arm] > 0 for arm, s in self.shares.items() if s == 0)

    @property
    def expected(self) -> dict[str, float]:
        total = sum(self.observed.values())
        return {arm: total * share for arm, share in self.shares.items()}

    def tested(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Observed, expected and shares of the arms planned to get traffic (share > 0)."""
        arms = [arm for arm, s in self.shares.items() if s > 0]
        expected = self.expected
        obs = np.array([self.observed[a] for a in arms], dtype=np.float64)
        exp = np.array([expected[a] for a in arms], dtype=np.float64)
        return obs, exp, np.array([self.shares[a] for a in arms], dtype=np.float64)

    def chi2(self) -> float:
        """Pearson's statistic; infinite when an arm planned at 0 got units."""
        if self.unplanned_units:
            return math.inf
        obs, exp, _ = self.tested()
        return float(np.sum((obs - exp) ** 2 / exp)) if obs.sum() > 0 else 0.0

    def result(self, p_value: float, alpha: float, method: Method) -> SrmResult:
        return SrmResult(
            p_value=p_value,
            chi2=self.chi2(),
            observed=dict(self.observed),
            expected=self.expected,
            mismatch=p_value < alpha,
            alpha=alpha,
            method=method,
        )


def _plan(counts: Mapping[str, int], expected_shares: Mapping[str, float], alpha: float) -> _Plan:
    """Validate the inputs and normalise the shares; an arm missing from counts got 0 units."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not expected_shares:
        raise ValueError("expected_shares is empty: name at least one arm")
    unknown = sorted(set(counts) - set(expected_shares))
    if unknown:
        raise ValueError(f"counts name arms missing from expected_shares: {unknown}")
    for arm, share in expected_shares.items():
        if not (math.isfinite(share) and share >= 0):
            raise ValueError(f"share of arm {arm!r} must be a finite number >= 0, got {share!r}")
    for arm, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, Integral) or count < 0:
            raise ValueError(f"count of arm {arm!r} must be an integer >= 0, got {count!r}")
    total_share = math.fsum(expected_shares.values())
    if total_share <= 0:
        raise ValueError("expected_shares are all zero: no arm is planned to receive traffic")
    return _Plan(
        observed={arm: int(counts.get(arm, 0)) for arm in expected_shares},
        shares={arm: share / total_share for arm, share in expected_shares.items()},
    )
