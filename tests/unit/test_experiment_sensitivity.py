"""The experiment-sensitivity measurement (loadtests/experiment_sensitivity.py): its mechanics on
small populations, against the library it vectorises and against cases with a known answer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from loadtests import experiment_sensitivity as es
from loadtests import session_play
from loadtests.simulator.behaviour import CLICK, EXAMINE, HIDE, N_DRAWS, Behaviour
from loadtests.simulator.ground_truth import ListTruth
from loadtests.simulator.settings import PopulationSettings
from shared.stats.interleaving import count_preferences, credit, team_draft_from_flips
from tests.utils.simulator import cache_dir, data_dir, ground_truth

K = 10
POPULATION = PopulationSettings()


def _distinct_lists(rng: np.random.Generator, rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Two rankings per row drawn from a small catalogue, so they overlap a lot."""
    a = np.stack([rng.choice(2 * k, k, replace=False) for _ in range(rows)])
    b = np.stack([rng.choice(2 * k, k, replace=False) for _ in range(rows)])
    return a, b


def _flat_pair(p_click: np.ndarray, *, p_hide: float = 0.01, new: int = 0) -> es.ListPair:
    """A pair whose lists share nothing, with click probabilities (personas, 2k) given."""
    personas = p_click.shape[0]
    a = np.broadcast_to(np.arange(K), (personas, K)).copy()
    is_new = np.zeros(personas, dtype=bool)
    is_new[personas - new :] = new > 0
    return es.ListPair(
        a,
        a + K,
        p_click,
        np.full_like(p_click, p_hide),
        np.full(personas, 1 / personas),
        is_new,
        Behaviour().examine_probs(K),
    )


@pytest.mark.parametrize("k", [10, 7])
def test_batch_draft_is_team_draft_from_flips_row_by_row(k: int) -> None:
    rng = np.random.default_rng(3)
    a, b = _distinct_lists(rng, 300, k)
    flips = rng.random((300, k // 2 + 1)) < 0.5
    items, by_b, neutral = session_play.team_draft_batch(a, b, flips)
    for i in range(300):
        ref = team_draft_from_flips(a[i].tolist(), b[i].tolist(), k, flips[i].tolist())
        assert items[i].tolist() == ref.items
        assert ["b" if t else "a" for t in by_b[i]] == ref.teams
        assert tuple(np.flatnonzero(neutral[i]).tolist()) == ref.neutral
    assert neutral.any() and not neutral.all()  # the small catalogue makes rounds contested


def test_the_draft_table_holds_the_draft_of_every_flip_pattern() -> None:
    pair = es.build_pair(ground_truth(), 0.5, 0.45, k=K)
    items, by_b, neutral = pair.drafts
    assert items.shape == (pair.a.shape[0], 2 ** (K // 2), K)
    rows = np.arange(0, pair.a.shape[0], 97)
    for pattern in (0, 5, 31):
        flips = np.zeros((rows.size, K // 2 + 1), dtype=bool)
        flips[:, : K // 2] = (pattern >> np.arange(K // 2)) & 1 == 1
        expect = session_play.team_draft_batch(pair.a[rows], pair.b[rows], flips)
        assert np.array_equal(items[rows, pattern], expect[0])
        assert np.array_equal(by_b[rows, pattern], expect[1])
        assert np.array_equal(neutral[rows, pattern], expect[2])


def test_react_is_behaviour_react_on_the_same_uniforms() -> None:
    rng = np.random.default_rng(0)
    n = 5_000
    p_click, p_hide = rng.uniform(0, 0.6, (n, K)), rng.uniform(0, 0.3, (n, K))
    blocked = rng.random((n, K)) < 0.2
    rand = rng.random((n, N_DRAWS, K))
    truth = ListTruth(p_click, p_click, p_hide, np.zeros((n, K)), 0.8, 3600.0)
    full = Behaviour().react(truth, rand, np.ones((n, K), dtype=bool), blocked)
    u = np.stack([rand[:, EXAMINE], rand[:, CLICK], rand[:, HIDE]])
    clicked, hidden = session_play.react(p_click, p_hide, Behaviour().examine_probs(K), u, blocked)
    assert np.array_equal(clicked, full.clicked) and np.array_equal(hidden, full.hidden)
    assert clicked.any() and hidden.any()


HETEROGENEOUS = es.UserModel(activity_shape=0.5, activity_cap=50, click_sd=1.0)


@pytest.mark.parametrize("model", [es.HOMOGENEOUS, HETEROGENEOUS], ids=["homogeneous", "varied"])
def test_expected_session_clicks_are_what_simulated_sessions_click(model: es.UserModel) -> None:
    """Three personas of different quality, sessions of 1-10 requests re-showing one list; with
    varied users 1-50 requests and click factors of sd 1 that the 0.5 items clip at 1."""
    p = np.concatenate([np.full((3, K), 0.0), np.zeros((3, K))], axis=1)
    p[:, :K] = np.array([[0.05], [0.2], [0.5]])
    pair = _flat_pair(p, p_hide=0.05)
    effect = es.true_effect(pair, POPULATION, model)
    expect = effect.production
    rng = np.random.default_rng(1)
    users = es.draw_users(rng, 100_000, pair, POPULATION, model)
    assert (users.click_factor * 0.5 > 1).mean() > (0.02 if model.click_sd else -1)
    clicks = es.play_sessions(
        pair, users.persona, users.requests, rng, click_factor=users.click_factor
    ).clicks
    se = clicks.std() / math.sqrt(clicks.size)
    assert abs(clicks.mean() - expect) < 4 * se, (clicks.mean(), expect, se)
    assert effect.lift_error < 1e-4 and (effect.method == "exact") == (model.click_sd == 0)


def test_horner_sum_is_the_old_power_sum_and_reproduces_the_old_true_lift() -> None:
    """The homogeneous users' exact figures are the old benchmark's (+2.61 %, 1.6546 -> 1.6977)."""
    pair = es.build_pair(ground_truth(), 0.5, 0.45, model_draws=16)
    pmf = es.session_length_pmf(POPULATION)
    p_click = np.take_along_axis(pair.p_click, pair.a, 1)
    p_hide = np.take_along_axis(pair.p_hide, pair.a, 1)
    ec = pair.examine * p_click
    q = 1 - ec - pair.examine * (1 - p_click) * p_hide
    old = (ec * (1 - (pmf * q[..., None] ** np.arange(1, pmf.size + 1)).sum(-1)) / (1 - q)).sum(-1)
    new = es.expected_session_clicks(p_click, p_hide, pair.examine, pmf)
    assert np.allclose(new, old, rtol=1e-12, atol=0)
    effect = es.true_effect(pair, POPULATION, es.HOMOGENEOUS)
    assert (round(effect.production, 4), round(effect.candidate, 4)) == (1.6546, 1.6977)
    assert round(effect.lift, 4) == 0.0261


def test_identical_rankers_interleave_to_no_preference() -> None:
    """Every position of two identical rankings is neutral: no margin at all. Team-draft's plain
    credit gives each click to a coin's team: margins symmetric around 0."""
    pair = es.build_pair(ground_truth(), 0.5, None)
    assert np.array_equal(pair.a, pair.b) and pair.overlap == pytest.approx(K)
    rng = np.random.default_rng(2)
    users = es.draw_users(rng, 30_000, pair, POPULATION)
    played = es.play_sessions(pair, users.persona, users.requests, rng, interleave=True)
    assert not played.margin.any() and played.clicks.sum() > 10_000
    margin = played.plain_margin
    prefs_a, prefs_b = int((margin < 0).sum()), int((margin > 0).sum())
    share, n = prefs_b / (prefs_a + prefs_b), prefs_a + prefs_b
    assert abs(share - 0.5) < 3 * math.sqrt(0.25 / n), share
    assert abs(margin.mean()) < 3 * margin.std() / math.sqrt(margin.size)


def test_a_candidate_keeping_production_errors_agrees_more_at_its_quality() -> None:
    truth = ground_truth()
    independent = es.build_pair(truth, 0.5, 0.5, candidate_seed_offset=20_000)
    kept = es.build_pair(truth, 0.5, 0.5, candidate_seed_offset=20_000, error_correlation=0.8)
    same = es.build_pair(truth, 0.5, 0.5, candidate_seed_offset=20_000, error_correlation=1.0)
    assert np.array_equal(same.a, same.b)  # all of production's errors: its very ranking
    assert independent.overlap < kept.overlap < K
    lifts = [es.true_effect(p, POPULATION).lift for p in (independent, kept)]
    assert all(abs(lift) < 0.02 for lift in lifts), lifts  # as good as production either way


def test_margin_is_the_library_credit_summed_per_user() -> None:
    """Per-user margins from the drafted teams equal credit + count_preferences per impression."""
    rng = np.random.default_rng(4)
    a, b = _distinct_lists(rng, 400, K)
    flips = rng.random((400, K // 2 + 1)) < 0.5
    _, by_b, neutral = session_play.team_draft_batch(a, b, flips)
    clicked = rng.random((400, K)) < 0.2
    margin, plain = session_play.credit_margins(clicked, by_b, neutral)
    assert np.array_equal(plain, 2 * (clicked & by_b).sum(axis=1) - clicked.sum(axis=1))
    teams = [["b" if t else "a" for t in row] for row in by_b]
    wins = [
        credit(teams[i], np.flatnonzero(clicked[i]), np.flatnonzero(neutral[i]).tolist())
        for i in range(400)
    ]
    assert [w[1] - w[0] for w in wins] == margin.tolist()
    counts = count_preferences(np.arange(400), [w[0] for w in wins], [w[1] for w in wins])
    assert (counts.a, counts.b, counts.ties) == (
        int((margin < 0).sum()),
        int((margin > 0).sum()),
        int((margin == 0).sum()),
    )


def test_a_strictly_better_ranker_wins_both_ways_round() -> None:
    truth = ground_truth()
    rng = np.random.default_rng(5)
    for production, candidate, wins in ((1.0, 0.0, "b"), (0.0, 1.0, "a")):
        pair = es.build_pair(truth, production, candidate)
        lift = es.true_effect(pair, POPULATION).lift
        assert (lift > 0.3) if wins == "b" else (lift < -0.2), lift
        users = es.draw_users(rng, 4_000, pair, POPULATION)
        margin = es.play_sessions(pair, users.persona, users.requests, rng, interleave=True).margin
        share = (margin > 0).sum() / (margin != 0).sum()
        assert share > 0.6 if wins == "b" else share < 0.4, share
        p = es.sign_p_values(margin, [margin.size])[0]
        assert p < 1e-6


def test_cuped_reduces_variance_when_the_pre_period_predicts_clicks() -> None:
    """Personas that click a lot in both periods (0.4) and little (0.02): pre-period clicks
    carry that, and CUPED removes about their squared correlation. The simulator's homogeneous
    users are alike (clicks depend on the item's rank in the user's own taste), so there it
    removes almost nothing."""
    rng = np.random.default_rng(6)
    p = np.repeat(np.array([[0.4], [0.02]]), 2 * K, axis=1)
    pair = _flat_pair(p)
    users = es.draw_users(rng, 20_000, pair, POPULATION)
    run = es.run_ab(pair, users, es.split(20_000), rng)
    moments = es.Moments()
    moments.add_ab(run)
    rho = np.corrcoef(run.clicks, run.pre_clicks)[0, 1]
    assert moments.rho2[0] > 0.1
    assert abs(moments.rho2[0] - rho**2) < 0.03
    plain = es.build_pair(ground_truth(), 0.5, 0.45)
    users = es.draw_users(rng, 20_000, plain, POPULATION)
    moments.add_ab(es.run_ab(plain, users, es.split(20_000), rng))
    assert moments.rho2[1] < 0.01


def test_new_users_have_no_pre_period() -> None:
    pair = _flat_pair(np.full((4, 2 * K), 0.2), new=1)
    for model in (es.HOMOGENEOUS, es.UserModel()):
        users = es.draw_users(np.random.default_rng(7), 4_000, pair, POPULATION, model)
        assert np.all(users.pre_requests[users.persona == 3] == 0)
        assert np.all(users.pre_requests[users.persona != 3] >= 1)


def test_homogeneous_users_are_the_old_draw_to_the_last_random_number() -> None:
    """The old benchmark's draw (persona, then two geometric sessions) on the same stream, and
    the stream left where it left it, so every later click is the old one too."""
    pair = _flat_pair(np.full((5, 2 * K), 0.2), new=1)
    rng, old_rng = np.random.default_rng(9), np.random.default_rng(9)
    users = es.draw_users(rng, 10_000, pair, POPULATION, es.HOMOGENEOUS)
    persona = old_rng.choice(5, size=10_000, p=pair.weights)
    lengths = np.minimum(old_rng.geometric(1 / 3, (2, 10_000)), 10)
    assert np.array_equal(users.persona, persona) and np.array_equal(users.requests, lengths[0])
    assert np.array_equal(users.pre_requests, np.where(persona == 4, 0, lengths[1]))
    assert np.all(users.click_factor == 1) and np.all(users.mean_requests == users.mean_requests[0])
    assert rng.random() == old_rng.random()


def test_activity_is_a_per_user_negative_binomial_that_persists_into_the_pre_period() -> None:
    """requests = 1 + Poisson(lambda), lambda ~ Gamma(shape, mean 2) per user, both periods:
    mean 3, variance 2 + 4 / shape, and the periods share Var(lambda) = 4 / shape."""
    pair = _flat_pair(np.full((3, 2 * K), 0.2))
    n, cases = 200_000, ((0.5, 10_000), (2.0, 10_000))
    for shape, cap in cases:
        model = es.UserModel(activity_shape=shape, activity_cap=cap, click_sd=0.0)
        users = es.draw_users(np.random.default_rng(10), n, pair, POPULATION, model)
        r, pre = users.requests.astype(float), users.pre_requests.astype(float)
        var = 2 + 4 / shape
        assert abs(r.mean() - 3) < 4 * math.sqrt(var / n) and abs(pre.mean() - 3) < 0.05
        assert (
            abs(r.var() / var - 1) < 0.05
            and abs(users.mean_requests.var() / (4 / shape) - 1) < 0.05
        )
        assert abs(np.corrcoef(r, pre)[0, 1] - (4 / shape) / var) < 0.015
    # the old sessions: redrawn per period, so nothing carries over
    old = es.draw_users(np.random.default_rng(11), n, pair, POPULATION, es.HOMOGENEOUS)
    assert abs(np.corrcoef(old.requests, old.pre_requests)[0, 1]) < 0.01


def test_request_pmf_is_the_drawn_distribution_and_shape_1_is_the_old_geometric() -> None:
    pair = _flat_pair(np.full((3, 2 * K), 0.2))
    model = es.UserModel(activity_shape=0.3, activity_cap=20, click_sd=0.0)
    pmf = es.request_pmf(POPULATION, model)
    users = es.draw_users(np.random.default_rng(12), 200_000, pair, POPULATION, model)
    seen = np.bincount(users.requests, minlength=21)[1:] / users.requests.size
    assert users.requests.max() == 20 and pmf.sum() == pytest.approx(1, abs=1e-12)
    assert np.abs(seen - pmf).max() < 0.004, np.abs(seen - pmf).max()
    # Gamma of shape 1 is exponential, and 1 + Poisson(exponential of mean 2) is geometric of
    # mean 3: the old marginal. What shape 1 changes is only that it persists in the user.
    shape_1 = es.UserModel(activity_shape=1.0, activity_cap=10, click_sd=0.0)
    assert np.allclose(es.request_pmf(POPULATION, shape_1), es.session_length_pmf(POPULATION))
    given = es.requests_pmf_given(np.array([1.0, 3.0, 40.0]), 20)
    assert np.allclose(given.sum(axis=1), 1) and given[0, 0] == 1


@pytest.mark.parametrize("sd", [0.3, 1.0])
def test_click_factor_has_mean_1_the_requested_sd_and_its_integral_agrees(sd: float) -> None:
    model = es.UserModel(activity_shape=1.0, click_sd=sd)
    pair = _flat_pair(np.full((3, 2 * K), 0.2))
    factor = es.draw_users(np.random.default_rng(13), 400_000, pair, POPULATION, model).click_factor
    assert abs(factor.mean() - 1) < 4 * sd / math.sqrt(factor.size)
    assert abs(factor.std() / sd - 1) < 0.03 and factor.min() > 0
    nodes, weights = es.click_factor_nodes(model)
    assert weights.sum() == pytest.approx(1, abs=1e-9)
    assert weights @ nodes == pytest.approx(1, abs=1e-9)
    assert weights @ nodes**2 == pytest.approx(1 + sd**2, rel=1e-6)


def test_click_propensity_persists_and_cuped_removes_the_square_of_what_persists() -> None:
    """One taste, sessions redrawn per period: only the click factor carries over. Pre-period
    and experiment clicks then correlate by Var(E[clicks | user]) / Var(clicks), which
    ``user_clicks`` computes; CUPED removes its square. Without a factor nothing carries over."""
    pair = _flat_pair(np.full((1, 2 * K), 0.1))
    treated = es.split(40_000)
    for sd in (1.0, 0.0):
        model = es.UserModel(activity_shape=0.0, click_sd=sd)
        rng = np.random.default_rng(14)
        users = es.draw_users(rng, 40_000, pair, POPULATION, model)
        run = es.run_ab(pair, users, treated, rng)
        rho = np.corrcoef(run.clicks, run.pre_clicks)[0, 1]
        share = es.user_clicks(pair, users, POPULATION, model).var() / run.clicks.var()
        assert abs(rho - share) < 0.03, (rho, share)
        moments = es.Moments()
        moments.add_ab(run)
        assert abs(moments.rho2[0] - share**2) < 0.03
        assert (rho > 0.15) if sd else (abs(rho) < 0.02)


def test_varied_users_make_cuped_find_a_covariate_on_the_real_lists() -> None:
    truth_pair = es.build_pair(ground_truth(), 0.5, 0.45)
    model = es.UserModel()
    sources = es.variance_sources(truth_pair, POPULATION, model, users=20_000)
    old = es.variance_sources(truth_pair, POPULATION, es.HOMOGENEOUS)
    assert old["persistent"] == old["between_personas"] and old["method"] == "exact"
    assert sources["persistent"] > 10 * old["persistent"] and sources["persistent_se"] > 0
    rng = np.random.default_rng(15)
    users = es.draw_users(rng, 20_000, truth_pair, POPULATION, model)
    moments = es.Moments()
    moments.add_ab(es.run_ab(truth_pair, users, es.split(20_000), rng))
    assert moments.rho2[0] > 0.05


def test_a_user_model_out_of_bounds_is_refused() -> None:
    for bad in ({"activity_shape": -1.0}, {"click_sd": -0.1}, {"activity_cap": 0}):
        with pytest.raises(ValueError, match="activity_shape"):
            es.UserModel(**bad)  # type: ignore[arg-type]


def _power_curve(users: np.ndarray, strength: float) -> np.ndarray:
    return special.ndtr(strength * np.sqrt(users / 1_000) - 1.96)


def test_the_power_search_recovers_a_known_curve_and_is_monotone() -> None:
    """Rejections drawn from Phi(c sqrt(n / 1000) - 1.96): 95 % power at
    n = 1000 ((1.645 + 1.96) / c)^2."""
    grid = [400, 600, 800, 1_000, 1_300, 1_700, 2_200]
    rng = np.random.default_rng(8)
    found = []
    for strength in (2.5, 3.0, 3.6):
        power = _power_curve(np.array(grid, dtype=float), strength)
        rejected = rng.random((2_000, len(grid))) < power
        fit = es.users_for_power(grid, rejected, bootstrap=50, rng=rng)
        truth = 1_000 * ((1.645 + 1.96) / strength) ** 2
        assert abs(fit.users / truth - 1) < 0.05, (fit.users, truth)
        assert fit.low < fit.users < fit.high
        xs = np.linspace(100, 5_000, 50)
        assert np.all(np.diff(fit.power(xs)) > 0)
        found.append(fit.users)
    assert found[0] > found[1] > found[2]  # a larger effect needs fewer users


def test_simulated_power_lands_near_the_analytical_users_for_a_large_effect() -> None:
    truth = ground_truth()
    pair = es.build_pair(truth, 1.0, 0.5)
    effect = es.true_effect(pair, POPULATION)
    estimate = es.pilot(pair, POPULATION, 20_000, 20_000, 0).analytical(effect)
    grids = {
        m: es.grid_around(estimate[m].get("users_true_effect", estimate[m]["users"]))
        for m in es.METHODS
    }
    result = es.simulate_power(pair, POPULATION, grids, 30, effect, bootstrap=20)
    for m in es.METHODS:
        power = result.rejected[m].mean(axis=0)
        assert power[-1] >= power[0] and power[-1] > 0.9, (m, power)
        ratio = result.fits[m].users / result.analytical[m]["users"]
        assert 0.6 < ratio < 1.5, (m, ratio)


def test_aa_sequential_test_holds_alpha_where_daily_peeking_does_not() -> None:
    """A/B: production twice; interleaving: production against another ranker as good, each
    user's labels swapped by a coin."""
    truth = ground_truth()
    pair = es.build_pair(truth, 0.5, None)
    equal = es.build_pair(truth, 0.5, 0.5, candidate_seed_offset=20_000)
    aa = es.run_aa(pair, POPULATION, seeds=80, days=14, users_per_day=300, tau=0.05, il_pair=equal)
    rates = aa.rates()
    assert rates["msprt_relative"]["rate"] <= 0.05
    assert rates["naive_z_daily"]["rate"] > 2 * rates["naive_z_last_look"]["rate"]
    assert rates["sequential_sign_test"]["rate"] <= rates["sign_test_daily"]["rate"]
    assert rates["sequential_graded_test"]["rate"] <= 0.05
    assert rates["graded_t_daily"]["rate"] > rates["graded_t_last_look"]["rate"]
    assert aa.interleaving_null == "another ranker of production's noise"
    assert np.all(np.diff(aa.sequential_p, axis=1) <= 0)  # the always-valid p never rises
    low, high = rates["naive_z_daily"]["low"], rates["naive_z_daily"]["high"]
    assert low < rates["naive_z_daily"]["rate"] < high


def test_the_command_writes_the_table_json_and_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ground_truth()  # the fit, cached where the command looks
    monkeypatch.setattr(es, "SWEEP", ({"mean_requests": 6.0},))  # one row of the sweep
    args = [
        "--seeds",
        "6",
        "--aa-seeds",
        "6",
        "--days",
        "3",
        "--aa-users-per-day",
        "300",
        "--production-noise",
        "1.0",
        "--candidate-noise",
        "0.3",
        "--model-draws",
        "1",
        "--pilot-users",
        "10000",
        "--effect-users",
        "20000",
        "--depth",
        "60",
        "--sweep-users",
        "4000",
        "--data",
        str(data_dir()),
        "--cache",
        str(cache_dir()),
        "--out",
        str(tmp_path),
    ]
    assert es.main(args) == 0
    report = json.loads((tmp_path / "sensitivity.json").read_text())
    assert set(report["methods"]) == set(es.METHODS)
    assert report["true_effect"]["lift"] > 0.1
    assert report["aa"]["false_positive_rates"]["msprt_relative"]["n"] == 6
    assert (
        report["lists"] == "fresh" and "best_plain_ab_over_interleaving_graded" in report["ratios"]
    )
    (row,) = report["sweep"]
    assert row["change"] == {"mean_requests": 6.0} and row["best_plain_ab_over_graded"] > 0
    page = (tmp_path / "sensitivity.html").read_text()
    assert page.count("<svg") == 2 and "interleaving" in page and "mean_requests=6.0" in page
    assert "users for 95% power" in capsys.readouterr().out
