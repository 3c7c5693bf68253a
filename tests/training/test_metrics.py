"""Metric functions against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluation.evaluate import candidate_recall
from training.evaluation.metrics import (
    auc,
    coverage,
    intra_list_diversity,
    recall_curve,
    topk_metrics,
)
from training.evaluation.rerank import mmr


def test_topk_by_hand() -> None:
    # User A: relevant {1, 3}, list [1, 2, 3] → hits at ranks 1 and 3.
    # User B: relevant {9}, list [4, 5, 6] → no hit.
    m = topk_metrics(np.array([[1, 2, 3], [4, 5, 6]]), [{1, 3}, {9}], ks=(3,))
    dcg_a = 1 + 1 / math.log2(4)
    idcg_a = 1 + 1 / math.log2(3)
    assert m["recall@3"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["precision@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["hit@3"] == pytest.approx(0.5)
    assert m["ndcg@3"] == pytest.approx((dcg_a / idcg_a) / 2)
    assert m["mrr@3"] == pytest.approx(0.5)
    assert m["map@3"] == pytest.approx(((1 / 1 + 2 / 3) / 2) / 2)


def test_ndcg_ideal_is_capped_at_k() -> None:
    # 5 relevant, k = 2, both top items relevant → perfect NDCG, recall 2/5.
    m = topk_metrics(np.array([[0, 1]]), [{0, 1, 2, 3, 4}], ks=(2,))
    assert m["ndcg@2"] == pytest.approx(1.0)
    assert m["recall@2"] == pytest.approx(0.4)
    assert m["map@2"] == pytest.approx(1.0)


def test_auc_by_hand() -> None:
    # Pairs (pos, neg): (0.8,0.3) ok, (0.8,0.8) tie=0.5, (0.4,0.3) ok, (0.4,0.8) wrong → 2.5/4.
    assert auc(np.array([0.8, 0.4, 0.3, 0.8]), np.array([1, 1, 0, 0])) == pytest.approx(0.625)
    assert math.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_coverage_diversity_curve() -> None:
    assert coverage(np.array([[0, 1], [1, 2]]), 10) == pytest.approx(0.3)
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert intra_list_diversity(np.array([[0, 1]]), v) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[0, 2]]), v) == pytest.approx(0.0)
    assert recall_curve(np.array([[5, 1, 2]]), [{1, 2}], (1, 2, 3)) == {1: 0.0, 2: 0.5, 3: 1.0}


def test_mmr_prefers_diverse_items() -> None:
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    items = np.array([0, 1, 2])
    rel = np.array([1.0, 0.95, 0.9])
    assert mmr(items, rel, v, lam=1.0, n_pick=3).tolist() == [0, 1, 2]
    assert mmr(items, rel, v, lam=0.5, n_pick=3).tolist() == [0, 2, 1]


def test_candidate_recall_is_the_union_of_the_lists() -> None:
    a = np.array([[1, 2], [5, 6]])
    b = np.array([[2, 3], [7, 8]])
    # user 0: relevant {1, 3, 9} → a finds 1, a ∪ b finds 1 and 3; user 1: relevant {8} → b only
    relevant = [{1, 3, 9}, {8}]
    assert candidate_recall([a], relevant) == pytest.approx((1 / 3 + 0) / 2)
    assert candidate_recall([a, b], relevant) == pytest.approx((2 / 3 + 1) / 2)
