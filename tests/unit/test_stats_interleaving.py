"""Team-draft interleaving (shared/stats/interleaving.py): drafts by hand, credit, and the test.

The simulations click by position only (P(click at position j) = 0.3 / (j + 1)) unless a test
says otherwise, so neither ranker is better and any preference is a false positive.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from shared.stats import (
    Interleaved,
    PreferenceCounts,
    UserPreference,
    count_preferences,
    credit,
    preference_delta,
    preference_test,
    tally,
    team_draft,
    team_draft_from_flips,
)

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = [f"item{i}" for i in range(40)]


def _click_probability(k: int) -> NDArray[np.float64]:
    return 0.3 / np.arange(1, k + 1)


def _random_clicks(rng: np.random.Generator, k: int) -> list[int]:
    return np.flatnonzero(rng.random(k) < _click_probability(k)).tolist()


# In round 2 both teams' next item is 3: whoever the coin names takes it, so 3 is neutral.
@pytest.mark.parametrize(
    ("a_first", "items", "teams"),
    [
        # a drafts 1, b its best unseen 2; b leads: 3; a has nothing new, b fills 4
        ([True, False], ["1", "2", "3", "4"], ["a", "b", "b", "b"]),
        # b drafts 2, a 1; a leads: 3, b 4
        ([False, True], ["2", "1", "3", "4"], ["b", "a", "a", "b"]),
        ([True, True], ["1", "2", "3", "4"], ["a", "b", "a", "b"]),
        # b drafts 2, a 1; b leads: 3; a is exhausted, b fills 4
        ([False, False], ["2", "1", "3", "4"], ["b", "a", "b", "b"]),
    ],
)
def test_small_draft_enumerated_by_hand(
    a_first: list[bool], items: list[str], teams: list[str]
) -> None:
    drafted = team_draft_from_flips(["1", "2", "3"], ["2", "3", "4"], 4, a_first)
    assert drafted == Interleaved(items, teams, (2,))


def test_k_cuts_the_draft_and_a_short_list_leaves_the_rest_to_the_other() -> None:
    assert team_draft_from_flips(["1", "2", "3"], ["2", "3", "4"], 3, [True, True]).items == [
        "1", "2", "3",
    ]  # fmt: skip
    drafted = team_draft_from_flips(["x"], list("abcdef"), 5, [True])
    assert drafted == Interleaved(["x", "a", "b", "c", "d"], ["a", "b", "b", "b", "b"])
    assert team_draft_from_flips([], [], 5, []) == Interleaved([], [])
    assert team_draft_from_flips(["1"], ["1"], 5, [False]) == Interleaved(["1"], ["b"], (0,))
    assert team_draft(["1", "2"], ["3"], 0, np.random.default_rng(0)) == Interleaved([], [])


def test_repeated_ids_in_a_list_are_skipped() -> None:
    drafted = team_draft_from_flips(["1", "1", "2"], ["1", "3", "3", "4"], 10, [True, True])
    # both teams propose 1 first (neutral); then a's next is 2 and b's 3: b's 3 is its own
    assert drafted == Interleaved(["1", "3", "2", "4"], ["a", "b", "a", "b"], (0,))


@pytest.mark.parametrize(
    ("a", "b", "a_first", "neutral"),
    [
        # identical rankings: every pick is the coin's
        (list("wxyz"), list("wxyz"), [True, False], (0, 1, 2, 3)),
        # both start with w, then a's x and b's y differ; a takes x, so both propose y next,
        # and after it both z
        (list("wxyz"), list("wyxz"), [False, True], (0, 2, 3)),
        # both start with w, then a's x and b's y differ, and each takes its own
        (list("wxyz"), list("wyzx"), [True, True], (0,)),
        # no item proposed by both in the same round
        (list("wxyz"), list("xwzy"), [True, True], ()),
        # both start with w and both continue with x: w and x neutral, then y against z
        (list("wxyv"), list("wxzv"), [True, True], (0, 1)),
    ],
)
def test_neutral_positions_by_hand(
    a: list[str], b: list[str], a_first: list[bool], neutral: tuple[int, ...]
) -> None:
    assert team_draft_from_flips(a, b, 4, a_first).neutral == neutral


def test_neutral_credit_keeps_the_expected_margin_exactly() -> None:
    """Every flip pattern of heavily overlapping lists, clicks with position-based examination:
    dropping the neutral positions' credit changes no user's expected margin, since flipping
    the coin of a neutral round gives the same item the other team's credit."""
    rng = np.random.default_rng(11)
    k, rounds = 8, 4
    appeal = dict(zip(CATALOGUE[:12], rng.uniform(0.05, 0.6, 12), strict=True))
    examine = 1 / (1 + np.arange(k))
    for _ in range(40):
        a = list(rng.choice(CATALOGUE[:12], 10, replace=False))
        b = list(rng.choice(CATALOGUE[:12], 10, replace=False))
        plain = with_neutral = 0.0
        for pattern in range(2**rounds):
            flips = [bool(pattern >> r & 1) for r in range(rounds)] + [True]
            d = team_draft_from_flips(a, b, k, flips)
            for p, (item, team) in enumerate(zip(d.items, d.teams, strict=True)):
                gain = examine[p] * appeal[item] * (1 if team == "b" else -1)
                plain += gain
                with_neutral += 0.0 if p in d.neutral else gain
        assert with_neutral == pytest.approx(plain, abs=1e-12)


def test_each_team_drafts_in_its_own_ranking_order_without_repeats() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        a = list(rng.choice(CATALOGUE, int(rng.integers(0, 25)), replace=False))
        b = list(rng.choice(CATALOGUE, int(rng.integers(0, 25)), replace=False))
        k = int(rng.integers(0, 30))
        drafted = team_draft(a, b, k, rng)
        assert len(set(drafted.items)) == len(drafted.items) == min(k, len(set(a) | set(b)))
        for team, ranking in (("a", a), ("b", b)):
            mine = [i for i, t in zip(drafted.items, drafted.teams, strict=True) if t == team]
            assert mine == sorted(mine, key=ranking.index)
        picks_a = drafted.teams.count("a")
        if len(a) >= k and len(b) >= k:  # neither exhausted: the teams stay within one pick
            assert abs(2 * picks_a - len(drafted.items)) <= 1


def test_identical_lists_split_every_position_evenly() -> None:
    rng = np.random.default_rng(2)
    ranking = CATALOGUE[:20]
    draws = 4000
    is_a = np.array(
        [[t == "a" for t in team_draft(ranking, ranking, 10, rng).teams] for _ in range(draws)]
    )
    share = is_a.mean(axis=0)
    log.info("identical lists: share of team a per position %s", np.round(share, 3))
    assert np.all(np.abs(share - 0.5) < 4 * math.sqrt(0.25 / draws))
    assert np.all(is_a.sum(axis=1) == 5)  # each draft: 5 picks each


def test_random_clicks_on_identical_lists_give_no_preference() -> None:
    rng = np.random.default_rng(3)
    ranking = CATALOGUE[:20]
    users = [UserPreference() for _ in range(3000)]
    for user in users:
        for _ in range(2):
            drafted = team_draft(ranking, ranking, 10, rng)
            user.add(credit(drafted.teams, _random_clicks(rng, 10)))
    counts = tally(users)
    result = preference_test(counts.a, counts.b)
    log.info("random clicks: %s, share b %.3f, p %.3f", counts, result.share_b, result.p_value)
    assert result.winner == "tie" and abs(result.share_b - 0.5) < 0.03


def test_a_user_clicking_b_s_top_items_prefers_b() -> None:
    rng = np.random.default_rng(4)
    users = []
    for _ in range(200):
        a = list(rng.permutation(CATALOGUE))
        b = list(rng.permutation(CATALOGUE))
        liked = set(b[:3])
        user = UserPreference()
        for _ in range(3):
            drafted = team_draft(a, b, 10, rng)
            clicked = [p for p, item in enumerate(drafted.items) if item in liked]
            user.add(credit(drafted.teams, clicked))
        users.append(user)
    counts = tally(users)
    result = preference_test(counts.a, counts.b)
    log.info("clicks on b's top 3: %s, share b %.3f", counts, result.share_b)
    assert result.winner == "b" and result.share_b > 0.9 and result.p_value < 1e-20


def test_credit_counts_each_clicked_position_once_per_team() -> None:
    teams = ["a", "b", "b", "a", "b"]
    assert credit(teams, [0, 1, 2, 2]) == (1, 2)
    assert credit(teams, []) == (0, 0)
    assert credit(teams, [0, 1, 2, 2], neutral=(0, 2)) == (0, 1)
    with pytest.raises(ValueError, match="position 5"):
        credit(teams, [5])


def test_user_preference_and_vectorised_count_agree() -> None:
    rng = np.random.default_rng(5)
    user_ids = rng.integers(0, 50, 400)
    wins = rng.poisson(0.5, (400, 2))
    users: dict[int, UserPreference] = {}
    for user, (wa, wb) in zip(user_ids.tolist(), wins.tolist(), strict=True):
        users.setdefault(user, UserPreference()).add((wa, wb))
    assert count_preferences(user_ids, wins[:, 0], wins[:, 1]) == tally(users.values())
    assert UserPreference(2, 2).preference == "tie" and UserPreference(0, 1).preference == "b"
    assert PreferenceCounts(3, 4, 5).n_users == 12
    with pytest.raises(ValueError, match="clicks_b"):
        count_preferences([1, 2], [0, 1], [1])


@pytest.mark.parametrize("method", ["wilson", "exact"])
def test_preference_test_matches_scipy(method: str) -> None:
    result = preference_test(40, 60, method=method)
    reference = stats.binomtest(60, 100, 0.5)
    ci = reference.proportion_ci(0.95, method=method)
    assert result.share_b == 0.6 and result.n == 100
    assert result.p_value == pytest.approx(reference.pvalue) == pytest.approx(0.0569, abs=1e-4)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert result.winner == "tie"
    assert preference_test(40, 65).winner == "b" and preference_test(65, 40).winner == "a"


def test_preference_test_edges_and_bad_input() -> None:
    empty = preference_test(0, 0)
    assert math.isnan(empty.share_b) and empty.p_value == 1.0 and empty.winner == "tie"
    assert preference_test(0, 5, method="exact").ci_high == 1.0
    with pytest.raises(ValueError, match="preference counts"):
        preference_test(-1, 3)
    with pytest.raises(ValueError, match="method"):
        preference_test(1, 3, method="bogus")


def test_preference_delta_by_hand() -> None:
    result = preference_delta(30, 50, 20)
    assert result.delta == pytest.approx((50 + 20 / 2) / 100 - 0.5)
    # scores 1 / 0.5 / 0: mean 0.6, second moment 0.55, variance 0.19
    assert result.std_error == pytest.approx(math.sqrt(0.19 / 100))
    assert result.ci_low == pytest.approx(0.1 - 1.959964 * result.std_error)
    assert preference_delta(10, 10, 5).delta == 0.0
    assert math.isnan(preference_delta(0, 0, 0).delta)


def _pool_of_drafts(rng: np.random.Generator, size: int, k: int) -> NDArray[np.bool_]:
    """Team b per position for ``size`` drafts, each flip vector beside its negation.

    With full lists the team pattern depends on the flips only, so the pairs make every
    position team b in exactly half the pool: no ranker is favoured.
    """
    rows: list[list[bool]] = []
    for _ in range(size // 2):
        a, b = list(rng.permutation(CATALOGUE)), list(rng.permutation(CATALOGUE))
        flips: Sequence[bool] = (rng.random(k) < 0.5).tolist()
        for f in (flips, [not x for x in flips]):
            rows.append([t == "b" for t in team_draft_from_flips(a, b, k, f).teams])
    return np.array(rows)


def test_false_positive_rate_under_no_preference_is_at_most_alpha() -> None:
    rng = np.random.default_rng(6)
    k, experiments, users, per_user = 10, 2000, 300, 2
    pool = _pool_of_drafts(rng, 1000, k)
    assert np.all(pool.mean(axis=0) == 0.5)
    shown = pool[rng.integers(0, len(pool), (experiments, users, per_user))]
    clicks = rng.random(shown.shape) < _click_probability(k)
    margin = (clicks & shown).sum(axis=(2, 3)) - (clicks & ~shown).sum(axis=(2, 3))
    prefs_a, prefs_b = (margin < 0).sum(axis=1), (margin > 0).sum(axis=1)
    pairs = list(zip(prefs_a.tolist(), prefs_b.tolist(), strict=True))
    unique = {pair: preference_test(*pair) for pair in set(pairs)}  # binomtest: ~1 ms a call
    tests = [unique[pair] for pair in pairs]
    fpr = float(np.mean([t.p_value <= 0.05 for t in tests]))
    wilson = float(np.mean([not t.ci_low <= 0.5 <= t.ci_high for t in tests]))
    log.info(
        "A/A over %d experiments (~%.0f users with a preference): sign-test FPR %.4f, "
        "Wilson interval excludes 0.5 in %.4f",
        experiments, float(np.mean(prefs_a + prefs_b)), fpr, wilson,
    )  # fmt: skip
    se = math.sqrt(0.05 * 0.95 / experiments)
    assert 0.05 - 4 * se <= fpr <= 0.05 + 3 * se  # exact test: discreteness keeps it <= alpha
    assert wilson <= 0.05 + 3 * se


def test_importing_drafting_does_not_load_scipy() -> None:
    code = (
        "import sys\n"
        "from shared.stats import team_draft, credit\n"
        "import shared.stats.interleaving\n"
        "assert 'scipy' not in sys.modules, 'scipy was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)
