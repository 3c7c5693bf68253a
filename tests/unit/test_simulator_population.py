"""The simulated population: deterministic sessions at the asked request rate."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from loadtests.simulator.population import Population
from loadtests.simulator.settings import PopulationSettings

USERS = [str(u) for u in range(1, 101)]
ACTIVITY = np.arange(1, 101, dtype=np.int64) * 10  # user "100" is the most active


def test_the_same_seed_plans_the_same_sessions() -> None:
    population = Population(USERS, ACTIVITY)
    assert population.plan(3, rate=20, duration_s=60) == population.plan(3, rate=20, duration_s=60)
    assert population.plan(3, rate=20, duration_s=60) != population.plan(4, rate=20, duration_s=60)


def test_requests_arrive_at_the_asked_rate() -> None:
    sessions = Population(USERS, ACTIVITY).plan(1, rate=20, duration_s=600)
    requests = sum(s.requests for s in sessions)
    assert abs(requests - 20 * 600) < 0.05 * 20 * 600
    starts = np.array([s.start_s for s in sessions])
    assert np.all(np.diff(starts) > 0) and starts[-1] < 600


def test_sessions_have_the_configured_length_and_new_user_share() -> None:
    settings = PopulationSettings(
        new_user_share=0.2, session_mean_requests=4, session_max_requests=8
    )
    population = Population(USERS, ACTIVITY, settings)
    sessions = population.plan(2, rate=50, n_sessions=5000)
    assert len(sessions) == 5000
    lengths = np.array([s.requests for s in sessions])
    assert lengths.min() >= 1 and lengths.max() == 8
    assert abs(lengths.mean() - population.mean_requests()) < 0.1
    new = [s for s in sessions if s.new_user]
    assert abs(len(new) / 5000 - 0.2) < 0.02
    assert len({s.user_id for s in new}) == len(new)  # each new session: a fresh user
    assert all(s.user_id.startswith("sim-new-") for s in new)
    assert {s.user_id for s in sessions if not s.new_user} <= set(USERS)


@pytest.mark.parametrize(("exponent", "heavy_share"), [(0.0, 0.01), (1.0, 100 / 5050)])
def test_returning_users_are_drawn_by_activity(exponent: float, heavy_share: float) -> None:
    settings = PopulationSettings(new_user_share=0.0, activity_exponent=exponent)
    sessions = Population(USERS, ACTIVITY, settings).plan(5, rate=100, n_sessions=20_000)
    counts = Counter(s.user_id for s in sessions)
    assert abs(counts["100"] / 20_000 - heavy_share) < 0.004


def test_a_plan_needs_a_rate_and_one_stopping_rule() -> None:
    population = Population(USERS, ACTIVITY)
    with pytest.raises(ValueError, match="exactly one"):
        population.plan(1, rate=10)
    with pytest.raises(ValueError, match="rate"):
        population.plan(1, rate=0, n_sessions=3)
