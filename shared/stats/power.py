"""Planning a fixed-horizon experiment: sample size per arm and minimum detectable effect (MDE).

Two-sided tests at level ``alpha`` with probability ``power`` of rejecting at the planned effect,
by the normal approximation (the far tail's rejections, < alpha / 2, are ignored as in every
textbook formula). ``ratio`` is n_treatment / n_control: 1 for a 50/50 split, 1/19 for a 5%
canary against 95% production.

- Difference in means, per-unit sd sigma (Chow, Shao & Wang 2008, ch. 3):
  n_c = (z_{1-alpha/2} + z_power)^2 sigma^2 (1 + 1/ratio) / mde^2.
  At d = mde / sigma = 0.2, alpha 0.05, power 0.8: 392.4 per arm (a t-test needs 393.4).
- Difference in proportions p1 -> p2, pooled variance under the null, unpooled under the
  alternative (Fleiss, Levin & Paik 2003, ch. 4, without the continuity correction; what R's
  ``power.prop.test`` solves):
  n_c = (z_a sqrt(p̄ q̄ (1 + 1/ratio)) + z_b sqrt(p1 q1 + p2 q2 / ratio))^2 / (p2 - p1)^2,
  p̄ = (p1 + ratio p2) / (1 + ratio). At 0.10 -> 0.12: 3,841 per arm.
- A one-sample mean of paired differences (interleaving's per-user credit margin, mean m and
  per-user sd sigma): n = (z_{1-alpha/2} + z_power)^2 sigma^2 / m^2 units, each in both "arms".
  At m / sigma = 0.2, alpha 0.05, power 0.8: 196.2 (half the two-sample n per arm).
- Interleaving's sign test (the share p of users with a preference who prefer B, against 0.5):
  n = (z_a / 2 + z_b sqrt(p (1 - p)))^2 / (p - 0.5)^2 users with a preference; ties carry no
  information, so the users to enrol are n / (1 - tie_share).

statsmodels (``NormalIndPower``) was considered and not used: statsmodels 0.15.0 requires pandas,
patsy and formulaic, which the serving core does not install, for formulas of a few lines.
Its ``proportion_effectsize`` is Cohen's arcsine h, a different (variance-stabilised)
approximation: 3,835 per arm at 0.10 -> 0.12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

DEFAULT_POWER_ALPHA = 0.05
DEFAULT_POWER = 0.8
_BISECTIONS = 100  # halves a unit interval below double precision


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Units needed per arm, unrounded (the plan enrols ``math.ceil`` of each)."""

    control: float
    treatment: float

    @property
    def total(self) -> int:
        """Units to enrol, both arms, each rounded up."""
        return math.ceil(self.control) + math.ceil(self.treatment)


def sample_size_means(
    mde: float,
    sd: float,
    *,
    alpha: float = DEFAULT_POWER_ALPHA,
    power: float = DEFAULT_POWER,
    ratio: float = 1.0,
) -> SampleSize:
    """Units per arm to detect a difference in means of ``mde`` when the per-unit sd is ``sd``."""
    _check(alpha, power, ratio)
    if not (math.isfinite(mde) and mde != 0):
        raise ValueError(f"mde must be a non-zero number, got {mde!r}")
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd must be > 0, got {sd!r}")
    n = _z_sum(alpha, power) ** 2 * sd**2 * (1 + 1 / ratio) / mde**2
    return SampleSize(n, n * ratio)


def mde_means(
    n_control: float,
    sd: float,
    *,
    alpha: float = DEFAULT_POWER_ALPHA,
    power: float = DEFAULT_POWER,
    ratio: float = 1.0,
) -> float:
    """The smallest difference in means (> 0) detected with ``power`` at ``n_control`` units."""
    _check(alpha, power, ratio)
    if not (n_control > 0 and math.isfinite(sd) and sd > 0):
        raise ValueError(f"need n_control > 0 and sd > 0, got {n_control!r}, {sd!r}")
    return _z_sum(alpha, power) * sd * math.sqrt((1 + 1 / ratio) / n_control)


def sample_size_proportions(
    baseline: float,
    lift: float,
    *,
    relative: bool = True,
    alpha: float = DEFAULT_POWER_ALPHA,
    power: float = DEFAULT_POWER,
    ratio: float = 1.0,
) -> SampleSize:
    """Units per arm to detect a rate moving from ``baseline`` by ``lift`` (relative/absolute)."""
    _check(alpha, power, ratio)
    p1 = _rate(baseline, "baseline")
    p2 = p1 * (1 + lift) if relative else p1 + lift
    if not (0 < p2 < 1 and p2 != p1):
        raise ValueError(f"the treatment rate {p2!r} must be in (0, 1) and differ from baseline")
    n = _proportions_root_n(p1, p2, alpha, power, ratio) ** 2
    return SampleSize(n, n * ratio)


def mde_proportions(
    baseline: float,
    n_control: float,
    *,
    relative: bool = True,
    increase: bool = True,
    alpha: float = DEFAULT_POWER_ALPHA,
    power: float = DEFAULT_POWER,
    ratio: float = 1.0,
) -> float:
    """The smallest lift detected with ``power`` at ``n_control`` units (negative if a decrease).

    Relative (p2 / p1 - 1) or absolute (p2 - p1), as ``sample_size_proportions`` takes it; NaN
    when no rate in (0, 1) reaches the power with that many units.
    """
    _check(alpha, power, ratio)
    p1 = _rate(baseline, "baseline")
    if not n_control > 0:
        raise ValueError(f"n_control must be > 0, got {n_control!r}")
    target = math.sqrt(n_control)
    lo, hi = (p1, 1.0) if increase else (0.0, p1)
    far = hi if increase else lo
    # sqrt(n) needed falls monotonically as p2 moves away from p1: bisect on it
    if _proportions_root_n(p1, _inside(far, p1), alpha, power, ratio) > target:
        return math.nan
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        if (_proportions_root_n(p1, mid, alpha, power, ratio) > target) == increase:
            lo = mid
        else:
            hi = mid
    p2 = (lo + hi) / 2
    return p2 / p1 - 1 if relative else p2 - p1


def sample_size_paired(
    mean: float, sd: float, *, alpha: float = DEFAULT_POWER_ALPHA, power: float = DEFAULT_POWER
) -> float:
    """Units to detect a mean of paired differences of ``mean`` with per-unit sd ``sd``."""
    _check(alpha, power, 1.0)
    if not (math.isfinite(mean) and mean != 0):
        raise ValueError(f"mean must be finite and non-zero, got {mean!r}")
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd must be finite and > 0, got {sd!r}")
    return (_z_sum(alpha, power) * sd / mean) ** 2


def sample_size_preference(
    share_b: float,
    *,
    alpha: float = DEFAULT_POWER_ALPHA,
    power: float = DEFAULT_POWER,
    tie_share: float = 0.0,
) -> float:
    """Users to enrol so the sign test detects a share ``share_b`` of preferences for B vs 0.5.

    ``tie_share`` is the expected share of users without a preference (no click, or as many
    for either team): they are enrolled but tell nothing.
    """
    _check(alpha, power, 1.0)
    p = _rate(share_b, "share_b")
    if p == 0.5:
        raise ValueError("share_b = 0.5 is no preference: nothing to detect")
    if not 0 <= tie_share < 1:
        raise ValueError(f"tie_share must be in [0, 1), got {tie_share!r}")
    return _preference_n(p, alpha, power) / (1 - tie_share)


def mde_preference(
    n_users: float,
    *,
    alpha: float = DEFAULT_POWER_ALPHA,
    power: float = DEFAULT_POWER,
    tie_share: float = 0.0,
) -> float:
    """The smallest share preferring B (> 0.5) the sign test detects with ``n_users`` enrolled."""
    _check(alpha, power, 1.0)
    if not (n_users > 0 and 0 <= tie_share < 1):
        raise ValueError(f"need n_users > 0 and tie_share in [0, 1), got {n_users}, {tie_share}")
    informative = n_users * (1 - tie_share)
    lo, hi = 0.5, _inside(1.0, 0.5)
    if _preference_n(hi, alpha, power) > informative:
        return math.nan
    for _ in range(_BISECTIONS):  # the users needed fall as the share moves away from 0.5
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _preference_n(mid, alpha, power) > informative else (lo, mid)
    return (lo + hi) / 2


def _preference_n(p: float, alpha: float, power: float) -> float:
    """Users with a preference that the sign test needs at share ``p``."""
    z_a, z_b = _z(alpha, power)
    return (z_a * 0.5 + z_b * math.sqrt(p * (1 - p))) ** 2 / (p - 0.5) ** 2


def _proportions_root_n(p1: float, p2: float, alpha: float, power: float, ratio: float) -> float:
    """sqrt(n_control) of Fleiss's formula."""
    z_a, z_b = _z(alpha, power)
    pbar = (p1 + ratio * p2) / (1 + ratio)
    null = z_a * math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio))
    alt = z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / ratio)
    return (null + alt) / abs(p2 - p1)


def _inside(edge: float, start: float) -> float:
    """The rate nearest ``edge`` strictly inside (0, 1), on the side of ``start``."""
    return math.nextafter(edge, start)


def _z(alpha: float, power: float) -> tuple[float, float]:
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)


def _z_sum(alpha: float, power: float) -> float:
    return sum(_z(alpha, power))


def _rate(p: float, name: str) -> float:
    if not 0 < p < 1:
        raise ValueError(f"{name} must be a rate in (0, 1), got {p!r}")
    return float(p)


def _check(alpha: float, power: float, ratio: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio (n_treatment / n_control) must be > 0, got {ratio!r}")
