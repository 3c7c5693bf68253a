"""Ranked-list agreement (shared/stats/ranking_diff.py): hand-worked values, reference values
from the RBO authors' code, properties, and the gateway's cost budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from shared.stats import ranking_diff as rd

ABC = list("abcdefghijklmnopqrstuvwxyz")

# Extrapolated RBO computed by William Webber's reference implementation (the paper's first
# author), as shipped in github.com/mpetri/rbo test_data/{uneven_abc,permute_abc}.json.
# Uneven: ABC against `other`; permuted: sorted(other) against `other`.
WEBBER_UNEVEN = [
    ("afcmleivjhs", 0.1, 0.951493),
    ("av", 0.2, 0.900000),
    ("aptkn", 0.2, 0.892587),
    ("auzemcwhrtjvbfqxyk", 0.4, 0.772647),
    ("karfvodcjmwgzlypebunq", 0.9, 0.468431),
    ("f", 0.9, 0.053090),
    ("zclx", 0.9, 0.233312),
    ("uhbgjlfoizrsxdwn", 0.9, 0.400312),
]
WEBBER_PERMUTED = [
    ("jtnxyzovchmfldbksguqewari", 0.9, 0.256365),
    ("vjxeryzauqkwilsdhgotbcfmn", 0.9, 0.287005),
    ("erqalcnuhjvoxgiybskzdtmwf", 0.9, 0.408634),
]


@pytest.mark.parametrize(("other", "p", "expected"), WEBBER_UNEVEN)
def test_rbo_matches_the_authors_code_on_lists_of_different_length(
    other: str, p: float, expected: float
) -> None:
    assert rd.rank_biased_overlap(ABC, list(other), p) == pytest.approx(expected, abs=1e-6)
    # the shorter list may come first or second
    assert rd.rank_biased_overlap(list(other), ABC, p) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("other", "p", "expected"), WEBBER_PERMUTED)
def test_rbo_matches_the_authors_code_on_permutations(
    other: str, p: float, expected: float
) -> None:
    got = rd.rank_biased_overlap(sorted(other), list(other), p)
    assert got == pytest.approx(expected, abs=1e-6)


def test_rbo_hand_worked() -> None:
    # equal lengths (eq. 30): X = (0, 2, 3); (1-p)/p = 1; 0 + 1 * .25 + 1 * .125 + 3/3 * .125
    assert rd.rank_biased_overlap(list("abc"), list("bac"), p=0.5) == pytest.approx(0.5)
    # uneven (eq. 32): S = [a], L = [b, a]; X_1 = 0, X_2 = 1; 1 * (1/2 * .25) + (1/2) * .25
    assert rd.rank_biased_overlap(["a"], ["b", "a"], p=0.5) == pytest.approx(0.25)


def test_identical_lists_agree_fully() -> None:
    a = [f"i{n}" for n in range(20)]
    d = rd.compare_lists(a, list(a), k=10)
    assert (d.overlap_at_k, d.jaccard_at_k, d.recall, d.kendall_tau) == (1.0, 1.0, 1.0, 1.0)
    assert d.rbo == pytest.approx(1.0, abs=1e-12)
    assert d.n_shared == 20


def test_reversed_list_has_tau_minus_one_but_full_set_overlap() -> None:
    a = list(range(20))
    b = a[::-1]
    assert rd.kendall_tau(a, b) == -1.0
    assert rd.overlap_at_k(a, b, 20) == 1.0
    assert rd.overlap_at_k(a, b, 10) == 0.0  # top halves are disjoint
    assert 0.0 < rd.rank_biased_overlap(a, b) < 0.5  # the top disagrees, the tail does not


def test_disjoint_lists() -> None:
    a, b = list("abcde"), list("vwxyz")
    d = rd.compare_lists(a, b, k=5)
    assert (d.overlap_at_k, d.jaccard_at_k, d.recall, d.rbo, d.n_shared) == (0, 0, 0, 0, 0)
    assert math.isnan(d.kendall_tau)  # fewer than 2 shared: undefined, not 0


def test_a_prefix_extrapolates_to_full_agreement() -> None:
    # the extrapolation assumes the short list's agreement carries on past its end
    assert rd.rank_biased_overlap(ABC[:5], ABC) == pytest.approx(1.0, abs=1e-12)
    assert rd.rank_biased_overlap(ABC[:5], ABC[:4] + ["zz"] + ABC[5:]) < 1.0


def test_rbo_weights_the_top() -> None:
    a = list(range(20))
    swap_top = [1, 0, *a[2:]]
    swap_bottom = [*a[:18], 19, 18]
    assert rd.rank_biased_overlap(a, swap_top) < rd.rank_biased_overlap(a, swap_bottom) < 1.0
    assert rd.kendall_tau(a, swap_top) == rd.kendall_tau(a, swap_bottom)  # tau does not


def test_overlap_and_jaccard_hand_worked() -> None:
    a, b = list("abcdef"), list("bxaycz")
    assert rd.overlap_at_k(a, b, 3) == pytest.approx(2 / 3)  # {a,b,c} vs {b,x,a}
    assert rd.jaccard_at_k(a, b, 3) == pytest.approx(2 / 4)
    assert rd.overlap_at_k(a, b, 6) == pytest.approx(3 / 6)
    assert rd.jaccard_at_k(a, b, 6) == pytest.approx(3 / 9)
    # a list shorter than k counts its missing ranks as misses
    assert rd.overlap_at_k(["a"], ["a"], 4) == 0.25
    assert rd.jaccard_at_k(["a"], ["a"], 4) == 1.0


def test_recall_of_candidate_sets() -> None:
    reference = list(range(400))
    other = list(range(100, 500))
    assert rd.recall(reference, other) == 0.75
    assert rd.recall(other, reference) == 0.75
    assert rd.recall([], other) == 1.0  # nothing to find
    assert rd.recall(reference, []) == 0.0


def test_duplicates_keep_their_first_position_and_never_count_twice() -> None:
    a = ["a", "a", "b", "c"]
    b = ["a", "b", "c", "c"]
    assert rd.overlap_at_k(a, b, 2) == 1.0  # top-2 distinct of both is {a, b}
    assert rd.recall(a, b) == 1.0
    assert rd.kendall_tau(a, b) == 1.0
    assert rd.rank_biased_overlap(a, b) == pytest.approx(1.0)


@pytest.mark.parametrize("n_items", [8, 30, 800])  # 800 takes scipy's branch
def test_kendall_tau_matches_scipy_tau_b_on_the_shared_items(n_items: int) -> None:
    rng = np.random.default_rng(n_items)
    for _ in range(20):
        a = rng.permutation(n_items)[: rng.integers(2, n_items)].tolist()
        b = rng.permutation(n_items)[: rng.integers(2, n_items)].tolist()
        shared = [x for x in a if x in set(b)]
        got = rd.kendall_tau(a, b)
        if len(shared) < 2:
            assert math.isnan(got)
            continue
        ref = stats.kendalltau([a.index(x) for x in shared], [b.index(x) for x in shared])
        assert got == pytest.approx(ref.statistic, abs=1e-12)


def test_compare_lists_agrees_with_each_measure() -> None:
    rng = np.random.default_rng(7)
    for _ in range(100):
        a = [f"i{x}" for x in rng.permutation(60)[: rng.integers(0, 40)]]
        b = [f"i{x}" for x in rng.permutation(60)[: rng.integers(0, 40)]]
        k = int(rng.integers(1, 30))
        d = rd.compare_lists(a, b, k)
        assert d.overlap_at_k == rd.overlap_at_k(a, b, k)
        assert d.jaccard_at_k == rd.jaccard_at_k(a, b, k)
        assert d.recall == rd.recall(a, b)
        assert d.rbo == pytest.approx(rd.rank_biased_overlap(a, b), abs=1e-12)
        tau = rd.kendall_tau(a, b)
        assert d.kendall_tau == tau or (math.isnan(tau) and math.isnan(d.kendall_tau))


def test_score_deltas_on_shared_items() -> None:
    got = rd.score_deltas(["a", "b", "c"], [1.0, 2.0, 3.0], ["c", "a", "z"], [2.5, 1.25, 9.0])
    assert got == rd.ScoreDeltas(mean_abs=pytest.approx(0.375), max_abs=0.5, n_shared=2)
    # numpy ids and a repeated id (its first score counts)
    got = rd.score_deltas(np.array([1, 2, 1]), np.array([0.0, 1.0, 5.0]), [1], [0.5])
    assert got == rd.ScoreDeltas(0.5, 0.5, 1)
    none = rd.score_deltas(["a"], [1.0], ["b"], [1.0])
    assert math.isnan(none.mean_abs) and math.isnan(none.max_abs) and none.n_shared == 0
    d = rd.compare_lists(["a", "b"], ["b", "a"], 2, prod_scores=[1, 2], shadow_scores=[2, 0])
    assert d.scores == rd.ScoreDeltas(0.5, 1.0, 2)  # a: |1 - 0|, b: |2 - 2|
    assert rd.compare_lists(["a"], ["a"], 1).scores is None


def test_empty_lists() -> None:
    assert rd.rank_biased_overlap([], []) == 1.0
    assert rd.rank_biased_overlap([], ["a"]) == 0.0
    assert rd.rank_biased_overlap(["a"], []) == 0.0
    assert rd.jaccard_at_k([], [], 5) == 1.0
    assert rd.compare_lists([], [], 5).rbo == 1.0
    assert rd.compare_lists(["a"], [], 5).rbo == 0.0
    assert rd.compare_lists([], ["a"], 5).rbo == 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        rd.overlap_at_k(["a"], ["a"], 0)
    with pytest.raises(ValueError, match="p must be"):
        rd.rank_biased_overlap(["a"], ["a"], p=1.0)
    with pytest.raises(ValueError, match="one score per id"):
        rd.score_deltas(["a", "b"], [1.0], ["a"], [1.0])
