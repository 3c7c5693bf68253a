"""CUPED inside the always-valid test: the A/A false-positive rate over repeated looks, and how
much sooner it decides than the plain test under a true lift, each measured over many seeds.

Users have a latent activity level; the covariate is their clicks before the experiment, the
metric their clicks during it (both Poisson in the level), so the covariate explains a good part
of the metric's variance, as pre-period activity does on the simulator (docs/experiments.md).
The slope is fixed at the first look (``Carried.cuped_theta`` in the analysis does the same).
"""

from __future__ import annotations

import numpy as np

from shared.stats.cuped import cuped_arm_stats, cuped_theta
from shared.stats.sequential import ArmStats, SequentialResult, msprt_relative

LOOKS = 10  # e.g. one a day
USERS_PER_LOOK = 150  # per arm
ALPHA = 0.05


def arm(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(metric, covariate) of ``n`` users."""
    level = rng.gamma(2.0, 0.5, n)
    return rng.poisson(3 * rate * level).astype(float), rng.poisson(4 * level).astype(float)


def first_look(lift: float, seed: int, cuped: bool) -> int | None:
    """The look (1..LOOKS) at which the test first decides, None if it never does."""
    rng = np.random.default_rng(seed)
    yc, xc = arm(rng, LOOKS * USERS_PER_LOOK, 0.5)
    yt, xt = arm(rng, LOOKS * USERS_PER_LOOK, 0.5 * (1 + lift))
    previous: SequentialResult | None = None
    theta = None
    for look in range(1, LOOKS + 1):
        n = look * USERS_PER_LOOK
        if cuped:
            theta = cuped_theta(yc[:n], xc[:n], yt[:n], xt[:n]) if theta is None else theta
            c, t = cuped_arm_stats(yc[:n], xc[:n], yt[:n], xt[:n], theta=theta)
        else:
            c, t = ArmStats.from_values(yc[:n]), ArmStats.from_values(yt[:n])
        previous = msprt_relative(c, t, alpha=ALPHA, previous=previous)
        if previous.decision != "inconclusive":
            return look
    return None


def test_the_cuped_sequential_test_keeps_its_false_positive_rate_over_repeated_looks() -> None:
    seeds = range(400)
    false_positives = sum(first_look(0.0, s, cuped=True) is not None for s in seeds)
    # alpha over 10 looks (a fixed-horizon test read daily would be far above it); 400 seeds
    # put one binomial sd at 0.011, so 0.05 + 2 sd bounds a correct test's measured rate
    assert false_positives / len(seeds) <= ALPHA + 0.022, false_positives


def test_cuped_decides_a_true_lift_sooner_than_the_plain_sequential_test() -> None:
    seeds = range(150)
    plain = [first_look(0.12, s, cuped=False) for s in seeds]
    cuped = [first_look(0.12, s, cuped=True) for s in seeds]
    found_plain = sum(x is not None for x in plain)
    found_cuped = sum(x is not None for x in cuped)
    assert found_cuped > found_plain  # more power within the same looks

    def looks(x: int | None) -> int:
        return x if x is not None else LOOKS + 1

    # where both decide, CUPED's first decision is no later, and sooner on the median
    both = [(looks(p), looks(c)) for p, c in zip(plain, cuped, strict=True)]
    assert np.median([c for _, c in both]) < np.median([p for p, _ in both])
