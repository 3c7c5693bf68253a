"""The simulated users' behaviour: examination curve, draws, determinism, event semantics."""

from __future__ import annotations

import numpy as np
import pytest

from loadtests.simulator.behaviour import N_DRAWS, Behaviour, draws, request_rng
from loadtests.simulator.ground_truth import ListTruth
from loadtests.simulator.offline import simulate_offline
from loadtests.simulator.settings import BehaviourSettings
from tests.utils.simulator import ground_truth

K = 10


def _constant_truth(n: int, p_click: float) -> ListTruth:
    full = np.full((n, K), p_click)
    return ListTruth(full, full * 0 + 0.5, full * 0 + 0.1, full * 0 + np.log(600.0), 0.8, 3600.0)


def _batch_draws(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([draws(rng, K) for _ in range(n)])


@pytest.mark.parametrize("eta", [0.5, 1.0, 1.5])
def test_click_through_by_position_follows_the_examination_curve(eta: float) -> None:
    n, p = 40_000, 0.5
    behaviour = Behaviour(BehaviourSettings(position_eta=eta))
    shown = np.ones((n, K), dtype=bool)
    reaction = behaviour.react(_constant_truth(n, p), _batch_draws(n), shown)
    measured = reaction.clicked.mean(axis=0) / p
    expected = 1.0 / (1.0 + np.arange(K)) ** eta
    se = np.sqrt(expected * p * (1 - expected * p) / n) / p
    assert np.all(np.abs(measured - expected) < 4 * se + 1e-9), (measured, expected)
    assert np.allclose(reaction.examined.mean(axis=0), expected, atol=0.01)


def test_position_bias_shows_in_the_logs_of_many_sessions_with_real_lists() -> None:
    """Every user is shown ten of their 50 best items in a fresh random order each time, so
    quality is the same at every position: click-through by position is examination alone."""
    truth = ground_truth()
    rng = np.random.default_rng(5)  # called in a fixed order: deterministic

    def shuffled_best(user_id: str, k: int) -> list[str]:
        return list(rng.choice(truth.top_items(user_id, 50), size=k, replace=False))

    users = truth.known_users
    out = simulate_offline({"all": shuffled_best}, truth, users, k=K, requests_per_user=20)
    ctr = out.clicks_by_position[0] / out.impressions_by_position[0]
    curve = ctr / ctr[0]
    expected = 1.0 / (1.0 + np.arange(K))
    assert np.all(np.diff(curve[:5]) < 0), curve
    assert np.allclose(curve, expected, atol=0.05), (curve, expected)


def test_the_same_request_gets_the_same_draws_and_reaction() -> None:
    truth = ground_truth()
    items = truth.popular_items(K)
    lists = truth.for_list("42", items)
    shown = np.ones((1, K), dtype=bool)
    behaviour = Behaviour()
    first = draws(request_rng(7, "42", 3, 1), K)
    again = draws(request_rng(7, "42", 3, 1), K)
    assert first.shape == (N_DRAWS, K) and np.array_equal(first, again)
    a = behaviour.react(lists, first[None], shown)
    b = behaviour.react(lists, again[None], shown)
    assert all(
        np.array_equal(x, y) for x, y in zip(vars(a).values(), vars(b).values(), strict=True)
    )
    for other in (
        request_rng(8, "42", 3, 1),
        request_rng(7, "43", 3, 1),
        request_rng(7, "42", 4, 1),
    ):
        assert not np.array_equal(draws(other, K), first)


def test_reactions_are_consistent_events() -> None:
    n = 20_000
    truth = _constant_truth(n, 0.6)
    shown = np.ones((n, K), dtype=bool)
    shown[:, 7:] = False  # short lists: three padded slots
    blocked = np.zeros((n, K), dtype=bool)
    blocked[:, 1] = True  # clicked earlier in the session
    r = Behaviour().react(truth, _batch_draws(n, 1), shown, blocked)
    assert not (r.examined & ~shown).any()
    assert not (r.clicked & ~r.examined).any() and not (r.liked & ~r.clicked).any()
    assert not (r.hidden & r.clicked).any() and not (r.hidden & ~r.examined).any()
    assert not r.clicked[:, 1].any() and not r.hidden[:, 1].any()
    assert np.array_equal(r.watch_s > 0, r.clicked)
    assert r.watch_s.max() <= 3600.0 and r.watch_s[r.clicked].min() >= 1.0
    assert 0.45 < r.liked.sum() / r.clicked.sum() < 0.55
    assert 0.08 < r.hidden.sum() / (r.examined & ~r.clicked & ~blocked).sum() < 0.12
    median = np.median(r.watch_s[r.clicked & (r.watch_s < 3600)])
    assert 500 < median < 720  # log-normal around 600 s (the cap trims the top)


def test_expected_clicks_are_what_users_click_on_average() -> None:
    truth = ground_truth()
    rows = np.arange(943).repeat(20)
    rng = np.random.default_rng(3)
    cols = np.stack([rng.choice(1682, K, replace=False) for _ in rows])
    reaction = Behaviour().react(
        truth.lookup(rows, cols), _batch_draws(len(rows), 4), np.ones(cols.shape, dtype=bool)
    )
    clicks = reaction.clicked.sum(axis=1)
    se = clicks.std() / np.sqrt(len(clicks))
    assert abs(clicks.mean() - reaction.expected_clicks.mean()) < 4 * se
