"""How far a shadow's ranked lists of item ids are from production's: cheap, pure measures.

The gateway runs these after the production answer has gone out, on the candidate sets
(~400 ids) and on the ranked and served lists (K ~ 20), so every function is pure and costs
microseconds. A list is read as a ranking of *distinct* ids: a repeated id keeps its first
position (duplicates are a bug upstream; they must not count twice as overlap).

- ``overlap_at_k``: |top-k(a) ∩ top-k(b)| / k.
- ``jaccard_at_k``: |top-k(a) ∩ top-k(b)| / |top-k(a) ∪ top-k(b)|.
- ``recall``: share of the reference set present in the other (candidate sets).
- ``kendall_tau``: Kendall's tau-b on the items both lists hold.
- ``rank_biased_overlap``: extrapolated RBO (Webber, Moffat & Zobel 2010, eq. 32).
- ``score_deltas``: mean and max |score_a - score_b| on the items both scored.
- ``compare_lists``: all of the above for one production / shadow pair, sharing the work.

Cost, measured with ``timeit`` (median of 5 x 2,000 calls, 2-core dev machine shared with
other work) on string ids, the shadow list replacing a third of production's items and
shuffling the rest locally; the gateway's budgets are 100 us at K = 20 and 1 ms at 400::

    function              20-item lists   400-item lists (k = 20)
    overlap_at_k               5 us           42 us
    jaccard_at_k               6 us           43 us
    recall                     2 us           21 us
    kendall_tau               23 us          356 us
    rank_biased_overlap       27 us          182 us
    score_deltas              19 us          164 us
    compare_lists             44 us          411 us

``tests/unit/test_ranking_diff.py::test_cost_stays_within_the_gateway_budget`` re-measures
``compare_lists`` and ``score_deltas`` against those budgets.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

Ids = Sequence[Hashable] | NDArray[Any]

DEFAULT_RBO_P = 0.9  # weight of the top 10 ranks: 86% of the total (Webber et al., Table 1)
# Kendall tau: below this many shared items the O(n^2) numpy pair count is cheaper than
# scipy.stats.kendalltau, whose fixed cost is ~300 us (measured: 10 us vs 374 us at n = 20,
# 41 us vs 276 us at n = 100, 391 us vs 357 us at n = 400); above it scipy's O(n log n) wins.
_PAIRWISE_MAX = 350


class ScoreDeltas(NamedTuple):
    """Score differences on the items both lists scored (NaN means when none is shared)."""

    mean_abs: float
    max_abs: float
    n_shared: int


@dataclass(frozen=True, slots=True)
class ListDiff:
    """Every agreement measure of one production / shadow pair of ranked lists."""

    k: int
    overlap_at_k: float
    jaccard_at_k: float
    recall: float  # share of production's items the shadow also returned (whole lists)
    kendall_tau: float  # NaN: fewer than 2 shared items
    rbo: float
    n_shared: int  # distinct items in both whole lists
    scores: ScoreDeltas | None  # None unless both lists' scores were given


def overlap_at_k(a: Ids, b: Ids, k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / k (a list shorter than k counts its missing ranks as misses)."""
    _check_k(k)
    return len(set(_distinct(a)[:k]).intersection(_distinct(b)[:k])) / k


def jaccard_at_k(a: Ids, b: Ids, k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / |top-k(a) ∪ top-k(b)|; 1.0 when both are empty (identical)."""
    _check_k(k)
    top_a, top_b = set(_distinct(a)[:k]), set(_distinct(b)[:k])
    union = len(top_a | top_b)
    return len(top_a & top_b) / union if union else 1.0


def recall(reference: Ids, other: Ids) -> float:
    """Share of ``reference``'s distinct items present in ``other``; 1.0 for an empty reference."""
    ref = set(_as_list(reference))
    if not ref:
        return 1.0  # nothing to find, nothing missed
    return len(ref.intersection(_as_list(other))) / len(ref)


def kendall_tau(a: Ids, b: Ids) -> float:
    """Kendall's tau-b between the two orders of the items both lists hold (NaN below 2)."""
    rank_a, _ = _shared_ranks(_distinct(a), _distinct(b))
    return _tau_of_ranks(rank_a)


def rank_biased_overlap(a: Ids, b: Ids, p: float = DEFAULT_RBO_P) -> float:
    """Extrapolated rank-biased overlap (Webber, Moffat & Zobel 2010, eq. 32), in [0, 1].

    With S the shorter list (length s), L the longer (length l) and X_d the overlap of their
    prefixes at depth d (for d > s, of all of S with L[:d])::

        RBO_ext = (1-p)/p * ( sum_{d=1..l} X_d/d p^d + sum_{d=s+1..l} X_s (d-s)/(s d) p^d )
                  + ( (X_l - X_s)/l + X_s/s ) p^l

    i.e. the agreement seen down to the end of the lists is assumed to continue below it
    (for s = l this is eq. 30). Both empty: 1.0; exactly one empty: 0.0.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    da, db = _distinct(a), _distinct(b)
    short, long_ = (da, db) if len(da) <= len(db) else (db, da)
    if not short:
        return 1.0 if not long_ else 0.0
    rank_s, rank_l = _shared_ranks(short, long_)
    return _rbo_ext(rank_s, rank_l, len(short), len(long_), p)


def score_deltas(ids_a: Ids, scores_a: ArrayLike, ids_b: Ids, scores_b: ArrayLike) -> ScoreDeltas:
    """Mean and max |score_a - score_b| over the items both lists scored (a repeat keeps its
    first score)."""
    la, lb = _as_list(ids_a), _as_list(ids_b)
    sa = np.asarray(scores_a, dtype=np.float64)
    sb = np.asarray(scores_b, dtype=np.float64)
    if sa.shape != (len(la),) or sb.shape != (len(lb),):
        raise ValueError(
            f"need one score per id: {len(la)} ids vs scores {sa.shape}, "
            f"{len(lb)} ids vs scores {sb.shape}"
        )
    # a dict keeps the last value of a repeated key: fill it back to front to keep the first
    pos_a = dict(zip(reversed(la), range(len(la) - 1, -1, -1), strict=True))
    pos_b = dict(zip(reversed(lb), range(len(lb) - 1, -1, -1), strict=True))
    shared = pos_a.keys() & pos_b.keys()
    if not shared:
        return ScoreDeltas(math.nan, math.nan, 0)
    ia = np.fromiter(map(pos_a.__getitem__, shared), dtype=np.intp, count=len(shared))
    ib = np.fromiter(map(pos_b.__getitem__, shared), dtype=np.intp, count=len(shared))
    delta = np.abs(sa[ia] - sb[ib])
    return ScoreDeltas(float(delta.mean()), float(delta.max()), len(shared))


def compare_lists(
    prod: Ids,
    shadow: Ids,
    k: int,
    *,
    prod_scores: ArrayLike | None = None,
    shadow_scores: ArrayLike | None = None,
    p: float = DEFAULT_RBO_P,
) -> ListDiff:
    """All agreement measures of ``shadow`` against ``prod`` at once (shared work done once).

    Score deltas are computed when both ``prod_scores`` and ``shadow_scores`` (one per id) are
    given.
    """
    _check_k(k)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    da, db = _distinct(prod), _distinct(shadow)
    rank_a, rank_b = _shared_ranks(da, db)
    # top-k overlap from the shared items' ranks: an item is in both top-ks iff both ranks < k
    in_both_top = int(np.count_nonzero(np.maximum(rank_a, rank_b) < k))
    union = min(k, len(da)) + min(k, len(db)) - in_both_top
    if len(da) <= len(db):
        rbo = _rbo_ext(rank_a, rank_b, len(da), len(db), p) if da else (0.0 if db else 1.0)
    else:
        rbo = _rbo_ext(rank_b, rank_a, len(db), len(da), p) if db else 0.0
    return ListDiff(
        k=k,
        overlap_at_k=in_both_top / k,
        jaccard_at_k=in_both_top / union if union else 1.0,
        recall=len(rank_a) / len(da) if da else 1.0,
        kendall_tau=_tau_of_ranks(rank_a),
        rbo=rbo,
        n_shared=len(rank_a),
        scores=(
            score_deltas(prod, prod_scores, shadow, shadow_scores)
            if prod_scores is not None and shadow_scores is not None
            else None
        ),
    )


def _as_list(ids: Ids) -> list[Hashable]:
    # numpy scalars hash ~3x slower than Python ints/strs: convert arrays once
    return ids.tolist() if isinstance(ids, np.ndarray) else list(ids)


def _distinct(ids: Ids) -> list[Hashable]:
    """The ids in order, each at its first position only."""
    return list(dict.fromkeys(_as_list(ids)))


def _shared_ranks(
    a: list[Hashable], b: list[Hashable]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """0-based ranks in ``a`` and in ``b`` of the items both hold, in ``b``'s order."""
    pos_a = dict(zip(a, range(len(a)), strict=True))
    pairs = [(pos_a[x], j) for j, x in enumerate(b) if x in pos_a]
    if not pairs:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    ranks = np.array(pairs, dtype=np.intp)
    return ranks[:, 0], ranks[:, 1]


def _tau_of_ranks(order: NDArray[np.intp]) -> float:
    """Kendall tau of the shared items from their ranks in one list, in the other's order.

    Against the other list's order (0, 1, 2, ...), tau = 1 - 2 * discordant / (n (n - 1) / 2).
    Ids are distinct, so neither order has ties and tau-b equals tau-a. NaN below 2 items.
    """
    n = len(order)
    if n < 2:
        return math.nan
    if n > _PAIRWISE_MAX:
        from scipy import stats  # lazily: the gateway almost never compares lists this long

        return float(stats.kendalltau(np.arange(n), order).statistic)
    # pairs i < j (in the other list's order) that this list ranks the other way round
    discordant = int(np.count_nonzero(np.triu(order[:, None] > order[None, :], 1)))
    return 1.0 - 4.0 * discordant / (n * (n - 1))


def _rbo_ext(
    rank_s: NDArray[np.intp], rank_l: NDArray[np.intp], n_s: int, n_l: int, p: float
) -> float:
    """Eq. 32 from the shared items' ranks in the shorter (S, n_s) and longer (L, n_l) list."""
    # an item counts in X_d from depth max(rank_s, rank_l) + 1 on (ranks in S are all < n_s)
    depth_found = np.maximum(rank_s, rank_l) + 1
    overlap = np.cumsum(np.bincount(depth_found, minlength=n_l + 1)[1:]).astype(np.float64)
    d = np.arange(1, n_l + 1, dtype=np.float64)
    weights = p**d
    x_s, x_l = float(overlap[n_s - 1]), float(overlap[n_l - 1])
    seen = float(np.dot(overlap / d, weights))
    tail = d[n_s:]  # depths n_s+1..n_l, where S has ended and its agreement is extrapolated
    extrapolated = float(np.dot(x_s * (tail - n_s) / (n_s * tail), weights[n_s:]))
    return (1 - p) / p * (seen + extrapolated) + ((x_l - x_s) / n_l + x_s / n_s) * p**n_l


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
