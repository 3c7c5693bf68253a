"""Fresh lists (loadtests/fresh_lists.py): the platform's filters and fatigue on constructed
rankings with certain clicks, the Monte Carlo true effect, and the real rankers' windows."""

from __future__ import annotations

import math

import numpy as np

from loadtests import experiment_sensitivity as es
from loadtests.fresh_lists import Rankings, _Window, fresh_effect, play_fresh, union_rankings
from loadtests.simulator.settings import PopulationSettings
from tests.utils.simulator import ground_truth

K = 5


def _rankings(p_click: float, p_hide: float = 0.0, depth: int = 30, personas: int = 1) -> Rankings:
    """Both rankers rank the same ``depth`` items the same way, every item alike."""
    cols = np.tile(np.arange(depth), (personas, 1))
    full = np.full((personas, 2 * depth), p_click)
    return union_rankings(cols, cols, full, np.full_like(full, p_hide), K)


def test_a_clicked_item_leaves_and_the_list_refills_from_below() -> None:
    """Every item examined and clicked: each request shows the next five, so clicks grow with
    requests; the fixed lists would show the same five again, all blocked."""
    deep = _rankings(1.0)
    examine = np.ones(K)
    requests = np.array([1, 2, 4])
    played = play_fresh(deep, examine, np.zeros(3, np.int64), requests, np.random.default_rng(0))
    assert played.clicks.tolist() == [5.0, 10.0, 20.0]
    assert played.expected.tolist() == [5.0, 10.0, 20.0] and played.short_requests == 0


def test_fatigue_drops_an_item_after_its_third_impression() -> None:
    window = _Window(np.zeros((1, 2 * 30 + K), dtype=np.int8), max_impressions=3)
    ranking, idx, pad = np.arange(30)[None], np.array([0]), np.arange(60, 65)
    nothing = np.zeros((1, K), dtype=bool)
    shown = []
    for request in range(4):
        items = window.first_eligible(ranking[:, : K * (request + 1)], idx, pad)
        window.show(idx, items, nothing, nothing)
        shown.append(items[0].tolist())
    assert shown[:3] == [[0, 1, 2, 3, 4]] * 3 and shown[3] == [5, 6, 7, 8, 9]
    hidden = np.array([[False, True, False, False, False]])
    window.show(idx, np.array([[5, 6, 7, 8, 9]]), nothing, hidden)  # 6 hidden: gone
    assert window.first_eligible(ranking, idx, pad)[0].tolist() == [5, 7, 8, 9, 10]


def test_a_ranking_too_short_for_the_window_pads_and_counts() -> None:
    deep = _rankings(0.0, depth=8)
    played = play_fresh(
        deep,
        np.ones(K),
        np.zeros(1, np.int64),
        np.array([4]),
        np.random.default_rng(1),
        max_impressions=1,
    )
    # request 2 finds 3 of its 5 items, then none: padding nobody clicks
    assert played.short_requests == 3 and played.clicks.sum() == 0


def test_identical_rankers_interleave_every_position_neutral() -> None:
    deep = _rankings(0.3, p_hide=0.05, personas=2)
    rng = np.random.default_rng(2)
    persona, requests = rng.integers(0, 2, 2_000), rng.integers(1, 8, 2_000)
    played = play_fresh(deep, 1 / (1 + np.arange(K)), persona, requests, rng, interleave=True)
    assert played.clicks.sum() > 1_000 and not played.margin.any()
    assert played.plain_margin.any()  # team-draft's own credit gives them to a coin's team


def test_expected_clicks_are_the_clicks_on_average_and_the_true_effect_is_paired() -> None:
    truth = ground_truth()
    pair = es.build_pair(truth, 0.5, 0.3, depth=60)
    population, model = PopulationSettings(), es.UserModel()
    users = es.draw_users(np.random.default_rng(3), 40_000, pair, population, model)
    assert pair.deep is not None
    played = play_fresh(
        pair.deep,
        pair.examine,
        users.persona,
        users.requests,
        np.random.default_rng(4),
        click_factor=users.click_factor,
    )
    se = played.clicks.std() / math.sqrt(played.clicks.size)
    assert abs(played.clicks.mean() - played.expected.mean()) < 4 * se
    drafted = play_fresh(
        pair.deep,
        pair.examine,
        users.persona,
        users.requests,
        np.random.default_rng(8),
        click_factor=users.click_factor,
        interleave=True,
    )
    for drawn, expected in (
        (drafted.margin, drafted.expected_margin),
        (drafted.plain_margin, drafted.expected_plain_margin),
    ):
        assert expected is not None and expected.std() < drawn.std() / 2
        assert abs(drawn.mean() - expected.mean()) < 4 * drawn.std() / math.sqrt(drawn.size)
    assert drafted.expected_margin is not None and drafted.expected_margin.mean() > 0
    effect = fresh_effect(
        pair.deep, pair.examine, users.persona, users.requests, users.click_factor, seed=5
    )
    lift = effect.candidate / effect.production - 1
    assert lift > 0.05 and 0 < effect.lift_se < lift / 10
    same = es.build_pair(truth, 0.5, None, depth=60)
    assert same.deep is not None
    none = fresh_effect(
        same.deep, same.examine, users.persona, users.requests, users.click_factor, seed=5
    )
    assert none.candidate == none.production and none.lift_se == 0


def test_fresh_lists_keep_the_top_k_of_the_fixed_ones() -> None:
    truth = ground_truth()
    fixed = es.build_pair(truth, 0.5, 0.45)
    fresh = es.build_pair(truth, 0.5, 0.45, depth=40)
    assert fresh.deep is not None and fresh.lists == "fresh" and fixed.lists == "fixed"
    assert np.array_equal(fixed.a, fresh.a) and np.array_equal(fixed.b, fresh.b)
    assert np.array_equal(fixed.p_click, fresh.p_click)
    # the deep rankings begin with the same items: production's first k union columns agree
    k = fixed.k
    assert np.array_equal(fresh.deep.p_click[:, :k], fixed.p_click[:, :k])
    users = es.draw_users(
        np.random.default_rng(6), 20_000, fresh, PopulationSettings(), es.UserModel()
    )
    one = users.requests == 1  # a single request sees the same list in both models
    a = es.play_sessions(fixed, users.persona[one], users.requests[one], np.random.default_rng(7))
    b = es.play_sessions(fresh, users.persona[one], users.requests[one], np.random.default_rng(7))
    assert np.array_equal(a.clicks, b.clicks)
