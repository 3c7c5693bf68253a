"""Off-policy estimates of a new policy's click rate from logged propensities: IPS, SNIPS, DR.

Each logged slot i holds the reward r_i (click 0/1) of the action the logging policy showed,
that policy's probability p_i of showing it (the ``propensity`` the re-ranking stage records),
and the evaluation policy's probability e_i of the same action in the same context (1 or 0 for
a deterministic policy: ``deterministic_target_probability``). With weights w_i = e_i / p_i:

- IPS (Horvitz & Thompson 1952): V = mean(w r). Unbiased when p_i > 0 wherever e_i > 0.
- SNIPS (Swaminathan & Joachims 2015, "The self-normalized estimator for counterfactual
  learning"): V = sum(w r) / sum(w). Biased by O(1/n), but bounded by the rewards' range and
  of lower variance when the weights vary.
- DR (Dudík, Langford & Li 2011, "Doubly robust policy evaluation and learning"): with a
  reward model's predictions q_i = q̂(x_i, a_i) for the logged action and
  t_i = sum_a e(a | x_i) q̂(x_i, a) for the evaluation policy, V = mean(t + w (r - q)).
  Unbiased if either the propensities or the reward model are right; the better the model,
  the lower the variance.

These are Open Bandit Pipeline's estimators (Saito et al. 2021; ``obp.ope``), written here
because obp cannot be installed beside Cascade. Checked on obp 0.5.7, its latest release
(``pip download obp==0.5.7 --no-deps``; sdist only, metadata built by poetry-core): its
METADATA has ``Requires-Python: >=3.8,<3.11`` (pip refuses it on our Python 3.11) and pins
``torch==1.12``, ``scikit-learn==1.1.3``, ``numpy==1.23.5``, ``scipy==1.9.3``,
``pandas==1.5.2`` and ``Pillow==9.1.1`` exactly, against numpy 2.4 and scipy 1.17 here (the
``>=`` bounds in its setup.py are not what pip reads).

Each estimate comes with a 1 - alpha interval: by default the normal approximation on the
per-sample terms (for SNIPS its linearisation (w_i (r_i - V)) / mean(w)), or, with
``bootstrap=B``, the percentile interval of B resamples drawn from ``rng`` (seed 0 when none is
given, so a report is reproducible). ``effective_sample_size`` is Kish's (sum w)^2 / sum w^2:
how many on-policy samples the weighted ones are worth; far below n means the estimate rests
on a few heavily weighted slots.

Propensities below ``propensity_floor`` (default 1e-3, weights at most 1000 e_i) are raised to
it and counted in ``n_clipped``; clipping trades a downward bias for variance. The exploration
re-ranker's smallest propensity is rate / pool (1/50 at its defaults), so the floor only
catches near-zero values from other logging. A propensity of 0 or above 1 is a logging error
and raises ``ValueError``: a shown action had a chance of being shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Estimator = Literal["ips", "snips", "dr", "ips_difference"]
Array = NDArray[np.float64]

DEFAULT_OPE_ALPHA = 0.05
DEFAULT_PROPENSITY_FLOOR = 1e-3
# Resampled indices per chunk of bootstrap replicates: ~32 MB of int64 at once.
_BOOTSTRAP_CHUNK = 1 << 22


@dataclass(frozen=True, slots=True)
class PolicyEstimate:
    """An off-policy estimate of the evaluation policy's mean reward, with its interval."""

    estimator: Estimator
    value: float  # NaN when no logged slot has weight (SNIPS)
    std_error: float
    ci_low: float
    ci_high: float
    alpha: float
    n: int  # logged slots
    effective_sample_size: float  # Kish: (sum w)^2 / sum w^2
    n_clipped: int  # propensities raised to the floor
    max_weight: float
    interval: Literal["normal", "bootstrap"]


def deterministic_target_probability(logged_action: ArrayLike, target_action: ArrayLike) -> Array:
    """e_i for a deterministic evaluation policy: 1 where it picks the logged action, else 0."""
    logged = np.asarray(logged_action).ravel()
    target = np.asarray(target_action).ravel()
    if logged.size != target.size:
        raise ValueError(f"target_action has {target.size} slots, logged_action {logged.size}")
    out: Array = np.asarray(logged == target, dtype=np.float64)
    return out


def ips(
    reward: ArrayLike,
    propensity: ArrayLike,
    target_probability: ArrayLike,
    *,
    alpha: float = DEFAULT_OPE_ALPHA,
    propensity_floor: float = DEFAULT_PROPENSITY_FLOOR,
    bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> PolicyEstimate:
    """Inverse propensity scoring: mean(w r)."""
    r, w, n_clipped = _weights(reward, propensity, target_probability, propensity_floor)
    return _estimate("ips", w * r, np.ones_like(w), w, n_clipped, alpha, bootstrap, rng)


def snips(
    reward: ArrayLike,
    propensity: ArrayLike,
    target_probability: ArrayLike,
    *,
    alpha: float = DEFAULT_OPE_ALPHA,
    propensity_floor: float = DEFAULT_PROPENSITY_FLOOR,
    bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> PolicyEstimate:
    """Self-normalised inverse propensity scoring: sum(w r) / sum(w)."""
    r, w, n_clipped = _weights(reward, propensity, target_probability, propensity_floor)
    return _estimate("snips", w * r, w, w, n_clipped, alpha, bootstrap, rng)


def ips_difference(
    reward: ArrayLike,
    propensity: ArrayLike,
    target_a: ArrayLike,
    target_b: ArrayLike,
    *,
    alpha: float = DEFAULT_OPE_ALPHA,
    propensity_floor: float = DEFAULT_PROPENSITY_FLOOR,
) -> PolicyEstimate:
    """IPS of policy a minus IPS of policy b on the same logged slots: mean((e_a - e_b) r / p).

    Paired, so its interval is narrower than the two intervals combined whenever the policies
    often agree (their common picks cancel). ``effective_sample_size`` is that of a's weights.
    """
    r, w_a, n_clipped = _weights(reward, propensity, target_a, propensity_floor)
    _, w_b, _ = _weights(reward, propensity, target_b, propensity_floor)
    d = (w_a - w_b) * r
    return _estimate("ips_difference", d, np.ones_like(d), w_a, n_clipped, alpha, 0, None)


def dr(
    reward: ArrayLike,
    propensity: ArrayLike,
    target_probability: ArrayLike,
    reward_hat_logged: ArrayLike,
    reward_hat_target: ArrayLike,
    *,
    alpha: float = DEFAULT_OPE_ALPHA,
    propensity_floor: float = DEFAULT_PROPENSITY_FLOOR,
    bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> PolicyEstimate:
    """Doubly robust: mean(t + w (r - q)), q and t the reward model's logged and policy values."""
    r, w, n_clipped = _weights(reward, propensity, target_probability, propensity_floor)
    q = _column(reward_hat_logged, "reward_hat_logged", r.size)
    t = _column(reward_hat_target, "reward_hat_target", r.size)
    return _estimate("dr", t + w * (r - q), np.ones_like(w), w, n_clipped, alpha, bootstrap, rng)


def _weights(
    reward: ArrayLike, propensity: ArrayLike, target_probability: ArrayLike, floor: float
) -> tuple[Array, Array, int]:
    """(rewards, clipped importance weights, number clipped), every field checked."""
    r = _column(reward, "reward", None)
    if r.size == 0:
        raise ValueError("reward is empty: no logged slots")
    p = _column(propensity, "propensity", r.size)
    e = _column(target_probability, "target_probability", r.size)
    if not 0 < floor <= 1:
        raise ValueError(f"propensity_floor must be in (0, 1], got {floor!r}")
    if np.any(p <= 0) or np.any(p > 1):
        bad = p[(p <= 0) | (p > 1)][0]
        raise ValueError(f"propensity must be in (0, 1]: found {bad} (a shown action had a chance)")
    if np.any(e < 0) or np.any(e > 1):
        raise ValueError("target_probability must be in [0, 1]")
    clipped = p < floor
    return r, e / np.where(clipped, floor, p), int(clipped.sum())


def _column(values: ArrayLike, field: str, size: int | None) -> Array:
    """One per-slot input as a finite float vector of the expected length."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if size is not None and x.size != size:
        raise ValueError(f"{field} has {x.size} slots, reward has {size}")
    if not np.isfinite(x).all():
        raise ValueError(f"{field} holds non-finite values (NaN or inf)")
    return x


def _estimate(
    estimator: Estimator,
    numerator: Array,
    denominator: Array,
    w: Array,
    n_clipped: int,
    alpha: float,
    bootstrap: int,
    rng: np.random.Generator | None,
) -> PolicyEstimate:
    """mean(numerator) / mean(denominator) with a normal or bootstrap interval."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    n = numerator.size
    scale = float(denominator.mean())
    value = float(numerator.mean()) / scale if scale > 0 else math.nan
    sum_w2 = float(w @ w)
    ess = float(w.sum()) ** 2 / sum_w2 if sum_w2 > 0 else 0.0
    if not math.isfinite(value) or n < 2:
        low, high, se = -math.inf, math.inf, math.inf
        interval: Literal["normal", "bootstrap"] = "normal"
    elif bootstrap:
        low, high, se = _bootstrap(numerator, denominator, alpha, bootstrap, rng)
        interval = "bootstrap"
    else:
        # the linearised terms of a ratio of means; for IPS and DR the terms themselves
        terms = (numerator - value * denominator) / scale
        se = float(terms.std(ddof=1)) / math.sqrt(n)
        z = NormalDist().inv_cdf(1 - alpha / 2)
        low, high, interval = value - z * se, value + z * se, "normal"
    return PolicyEstimate(
        estimator, value, se, low, high, alpha, n, ess, n_clipped, float(w.max()), interval
    )


def _bootstrap(
    numerator: Array,
    denominator: Array,
    alpha: float,
    resamples: int,
    rng: np.random.Generator | None,
) -> tuple[float, float, float]:
    """Percentile interval and standard deviation of ``resamples`` bootstrap estimates."""
    rng = rng if rng is not None else np.random.default_rng(0)
    n = numerator.size
    chunk = max(1, _BOOTSTRAP_CHUNK // n)
    estimates = np.empty(resamples)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, n, (stop - start, n))
        num, den = numerator[idx].sum(axis=1), denominator[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimates[start:stop] = num / den
    estimates = estimates[np.isfinite(estimates)]  # SNIPS resamples with no weight at all
    if estimates.size < 2:
        return -math.inf, math.inf, math.inf
    low, high = np.quantile(estimates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), float(estimates.std(ddof=1))
