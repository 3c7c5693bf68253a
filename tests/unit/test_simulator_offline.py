"""Offline arms: a better ranker gets more clicks, by a real margin, in every one of many seeds."""

from __future__ import annotations

import time

import numpy as np

from loadtests.simulator.offline import assign_arms, simulate_offline
from loadtests.simulator.rankers import oracle_ranker, popularity_ranker, random_ranker
from tests.utils.simulator import ground_truth

SEEDS = range(20)


def test_oracle_beats_popularity_beats_random_on_clicks_per_user_in_every_seed() -> None:
    """943 users split three ways by a salted hash per seed (about 314 per arm), one list of
    10 each (eta 1). Measured over 20 seeds, mean clicks per user (min-max over seeds): oracle
    0.90 (0.80-0.97), popularity 0.53 (0.46-0.60), random 0.10 (0.07-0.13); in every seed the
    oracle-popularity gap is 4.2 or more standard errors, popularity-random 7.9 or more.
    """
    truth = ground_truth()
    per_seed = []
    for seed in SEEDS:
        rankers = {
            "oracle": oracle_ranker(truth),
            "popularity": popularity_ranker(truth),
            "random": random_ranker(truth, seed),
        }
        out = simulate_offline(rankers, truth, truth.known_users, seed=seed, salt=f"s{seed}")
        arms = out.per_arm()
        per_seed.append([arms[a]["clicks_per_user"] for a in ("oracle", "popularity", "random")])
        # Each run on its own: the difference is far outside its noise.
        for better, worse in (("oracle", "popularity"), ("popularity", "random")):
            diff, se = out.difference("clicks", better, worse)
            assert diff > 3 * se, (seed, better, worse, diff, se)
    clicks = np.array(per_seed)
    assert np.all(clicks[:, 0] > clicks[:, 1]) and np.all(clicks[:, 1] > clicks[:, 2])
    oracle, popularity, random = clicks.mean(axis=0)
    assert oracle - popularity > 0.25, clicks.mean(axis=0)
    assert popularity - random > 0.3, clicks.mean(axis=0)
    assert 0.8 < oracle < 1.0 and 0.45 < popularity < 0.6 and 0.07 < random < 0.14


def test_expected_clicks_order_the_arms_without_click_noise() -> None:
    truth = ground_truth()
    rankers = {"oracle": oracle_ranker(truth), "popularity": popularity_ranker(truth)}
    out = simulate_offline(rankers, truth, truth.known_users, seed=1)
    arms = out.per_arm()
    assert (
        arms["oracle"]["expected_clicks_per_user"] > arms["popularity"]["expected_clicks_per_user"]
    )
    assert arms["oracle"]["expected_clicks_per_user_se"] < arms["oracle"]["clicks_per_user_se"]


def test_arms_come_from_a_sticky_salted_hash_with_the_given_shares() -> None:
    users = [str(u) for u in range(1, 20_001)]
    arms = assign_arms(users, "rollout-1", [0.95, 0.05])
    assert abs(arms.mean() - 0.05) < 0.005
    assert np.array_equal(arms, assign_arms(users, "rollout-1", [0.95, 0.05]))
    assert not np.array_equal(arms, assign_arms(users, "rollout-2", [0.95, 0.05]))
    # Growing the canary share keeps every canary user in the canary (as the gateway's ramp).
    grown = assign_arms(users, "rollout-1", [0.75, 0.25])
    assert np.all(grown[arms == 1] == 1)


def test_the_same_seed_gives_the_same_outcome_and_another_seed_another() -> None:
    truth = ground_truth()
    users = truth.known_users[:300]

    def run(seed: int) -> np.ndarray:
        rankers = {"a": popularity_ranker(truth), "b": oracle_ranker(truth)}
        out = simulate_offline(rankers, truth, users, seed=seed, requests_per_user=2)
        return np.stack([out.outcomes[key] for key in ("clicks", "likes", "watch_s", "hides")])

    assert np.array_equal(run(4), run(4))
    assert not np.array_equal(run(4), run(5))


def test_sessions_do_not_click_an_item_twice() -> None:
    """A ranker that shows the same list at every request gets fewer clicks at each repeat."""
    truth = ground_truth()
    rankers = {"same": oracle_ranker(truth)}
    once = simulate_offline(rankers, truth, truth.known_users, requests_per_user=1, seed=2)
    five = simulate_offline(rankers, truth, truth.known_users, requests_per_user=5, seed=2)
    assert five.outcomes["clicks"].max() <= 10  # every item of the list at most once
    # Without the memory five requests would get five times the clicks; measured 64 %.
    assert five.outcomes["clicks"].mean() < 0.75 * 5 * once.outcomes["clicks"].mean()


def test_new_users_and_unknown_items_are_simulated() -> None:
    truth = ground_truth()
    users = [f"sim-new-{n}" for n in range(500)]
    with_unknown = lambda _u, k: ["brand-new-item", *truth.popular_items(k - 1)]  # noqa: E731
    out = simulate_offline({"pop": with_unknown}, truth, users, seed=3)
    assert out.outcomes["impressions"].sum() == 500 * 10
    assert 0.3 < out.per_arm()["pop"]["clicks_per_user"] < 0.9


def test_thousands_of_users_per_second() -> None:
    truth = ground_truth()
    users = [str(u) for u in range(1, 944)] * 5
    rankers = {"a": popularity_ranker(truth), "b": random_ranker(truth)}
    start = time.perf_counter()
    simulate_offline(rankers, truth, users, seed=0)
    rate = len(users) / (time.perf_counter() - start)
    assert rate > 2_000, f"{rate:.0f} users/s"
