"""EASE and the two item-kNN variants against scores computed by hand on tiny matrices."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training.baselines import (
    EASE,
    ItemKNN,
    ItemKNNPerSource,
    choose_on_validation,
    ease_weights,
)

R6 = np.sqrt(6.0)


def _csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """Binary users × items matrix, one list of item indices per user."""
    m = np.zeros((len(rows), n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        m[u, items] = 1.0
    return sp.csr_matrix(m)


def test_ease_two_items_by_hand() -> None:
    # X = [[1, 1], [1, 0]], λ = 1: XᵀX + λI = [[3, 1], [1, 2]], P = [[2, -1], [-1, 3]] / 5,
    # B[0, 1] = -P[0, 1] / P[1, 1] = 1/3 and B[1, 0] = -P[1, 0] / P[0, 0] = 1/2.
    x = _csr([[0, 1], [0]], 2)
    model = EASE(x, lam=1.0)
    np.testing.assert_allclose(model.weights, [[0.0, 1 / 3], [1 / 2, 0.0]], atol=1e-6)
    np.testing.assert_allclose(
        model.scores(np.array([0, 1]), x), [[1 / 2, 1 / 3], [0.0, 1 / 3]], atol=1e-6
    )


def test_ease_column_is_a_ridge_regression_on_the_other_items() -> None:
    # EASE's objective separates by column: column j of B (B[j, j] = 0) is the ridge regression of
    # item j's column on the other items' columns. Solved here one column at a time.
    rng = np.random.default_rng(0)
    x = (rng.random((12, 6)) < 0.4).astype(np.float64)
    lam = 3.0
    expected = np.zeros((6, 6))
    for j in range(6):
        rest = [i for i in range(6) if i != j]
        a = x[:, rest]
        expected[rest, j] = np.linalg.solve(a.T @ a + lam * np.eye(5), a.T @ x[:, j])
    np.testing.assert_allclose(ease_weights(sp.csr_matrix(x), lam), expected, atol=1e-10)


# Items A, B, C, D seen by users {0, 1}, {0, 1, 2}, {2, 3}, {4}: cos(A, B) = 2/√6, cos(B, C) = 1/√6,
# every other pair 0. With one neighbour, B is A's best and A is B's best, but C's best is B
# while B's best is A: the relation is not mutual, so the two variants differ.
KNN_TRAIN = _csr([[0, 1], [0, 1], [1, 2], [2], [3]], 4)
ONLY_C, ONLY_B = [2], [1]


def test_item_knn_keeps_top_sources_per_target() -> None:
    # Target C keeps its best source B; target B keeps A, not C: a user with only C gets nothing,
    # a user with only B reaches A (2/√6) and C (1/√6).
    model = ItemKNN(KNN_TRAIN, neighbours=1)
    known = _csr([ONLY_C, ONLY_B], 4)
    expected = [[0.0, 0.0, 0.0, 0.0], [2 / R6, 0.0, 1 / R6, 0.0]]
    np.testing.assert_allclose(model.scores(np.array([0, 1]), known), expected, atol=1e-6)


def test_item_knn_per_source_keeps_top_targets_per_source() -> None:
    # Source C keeps its best target B; source B keeps A only.
    model = ItemKNNPerSource(KNN_TRAIN, neighbours=1)
    known = _csr([ONLY_C, ONLY_B], 4)
    expected = [[0.0, 1 / R6, 0.0, 0.0], [2 / R6, 0.0, 0.0, 0.0]]
    np.testing.assert_allclose(model.scores(np.array([0, 1]), known), expected, atol=1e-6)


def test_item_knn_with_every_neighbour_is_the_cosine_sum() -> None:
    rng = np.random.default_rng(1)
    x = (rng.random((10, 5)) < 0.5).astype(np.float64)
    cos = (x.T @ x) / np.outer(np.linalg.norm(x, axis=0), np.linalg.norm(x, axis=0))
    np.fill_diagonal(cos, 0.0)
    train = sp.csr_matrix(x)
    for model in (ItemKNN(train, 5), ItemKNNPerSource(train, 5)):
        np.testing.assert_allclose(model.scores(np.arange(10), train), x @ cos, atol=1e-5)


@pytest.mark.parametrize("model_cls", [EASE, ItemKNN, ItemKNNPerSource])
def test_cold_users_get_popularity(model_cls: type) -> None:
    arg = {"lam": 1.0} if model_cls is EASE else {"neighbours": 1}
    model = model_cls(KNN_TRAIN, **arg)
    known = _csr([[], ONLY_B], 4)
    out = model.scores(np.array([0, 1]), known)
    np.testing.assert_allclose(out[0], [2, 3, 2, 1])  # item counts of the training matrix


def test_choose_on_validation_keeps_the_best_of_the_grid() -> None:
    model, scores = choose_on_validation(
        [1.0, 10.0, 100.0],
        lambda lam: EASE(KNN_TRAIN, lam),
        lambda m: -abs(m.lam - 10.0),
    )
    assert isinstance(model, EASE) and model.lam == 10.0
    assert scores == {1.0: -9.0, 10.0: 0.0, 100.0: -90.0}
