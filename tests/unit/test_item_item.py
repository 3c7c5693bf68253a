"""EASE served from its top-N weights per item: the pruning, the file, and parity of the served
top list with the training-side scores of the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from shared.models import item_item
from shared.models.item_item import SparseItemItem
from training.baselines import EASE, ItemItem, top_n_per_row


def test_top_n_per_row_keeps_each_rows_largest_magnitudes() -> None:
    w = np.array([[0.0, 3.0, -1.0, 2.0], [5.0, 0.0, 4.0, -6.0], [0.1, 0.2, 0.0, 0.3]])
    m = top_n_per_row(w, 2).toarray()
    expected = [[0.0, 3.0, 0.0, 2.0], [5.0, 0.0, 0.0, -6.0], [0.0, 0.2, 0.0, 0.3]]
    np.testing.assert_allclose(m, expected, rtol=1e-6)


SUMS = [(0, 0), (0, 10**9), (10**9, 0)]  # (DENSE_RATIO, DENSE_MAX_ITEMS)
SUM_IDS = ["sorted-sum", "catalogue-sum", "dense-matrix"]


@pytest.fixture(params=SUMS, ids=SUM_IDS)
def summing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each way of summing a history's weights, in turn."""
    ratio, dense_max = request.param
    monkeypatch.setattr(item_item, "DENSE_RATIO", ratio)
    monkeypatch.setattr(item_item, "DENSE_MAX_ITEMS", dense_max)


@pytest.mark.usefixtures("summing")
def test_served_scores_by_hand() -> None:
    # Rows: item 0 → {1: 0.5, 2: 0.25}; item 1 → {0: 1.0, 2: 0.5}; item 2 → {1: -1.0}.
    model = SparseItemItem(
        np.array([0, 2, 4, 5]),
        np.array([1, 2, 0, 2, 1]),
        np.array([0.5, 0.25, 1.0, 0.5, -1.0], np.float32),
    )
    labels, scores = model.top(np.array([0]), 5)
    assert labels.tolist() == [1, 2] and scores.tolist() == [0.5, 0.25]
    labels, scores = model.top(np.array([0, 2]), 5)  # item 1: 0.5 - 1.0 < 0, never returned
    assert labels.tolist() == [] and scores.tolist() == []
    labels, scores = model.top(np.array([0, 1, 0, -1, 7]), 5)  # repeats and unknown rows ignored
    assert labels.tolist() == [2] and scores.tolist() == [0.75]  # the history is never returned
    assert model.top(np.array([-1]), 5)[0].size == 0
    np.testing.assert_allclose(model.scores(np.array([0, 2]), np.array([1, 2, 0, -1, 9])),
                               [-0.5, 0.25, 0.0, 0.0, 0.0])  # fmt: skip


@pytest.mark.usefixtures("summing")
def test_served_top_list_matches_training_side_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    train = sp.csr_matrix((rng.random((60, 40)) < 0.2).astype(np.float32))
    weights = top_n_per_row(EASE(train, lam=5.0).weights, 10)
    SparseItemItem(weights.indptr, weights.indices, weights.data, {"top_n": 10}).save(tmp_path)
    served = SparseItemItem.load(tmp_path)
    assert served is not None and served.meta["top_n"] == 10 and served.n_items == 40
    training_side = ItemItem(weights.toarray(), train).scores(np.arange(60), train)
    for u in range(60):
        history = train[u].indices.astype(np.int64)
        labels, scores = served.top(history, 15)
        if history.size == 0:
            assert labels.size == 0
            continue
        expected = training_side[u].copy()
        expected[history] = -np.inf
        np.testing.assert_allclose(scores, expected[labels], atol=1e-5)
        positive = np.sort(expected[expected > 0])[::-1]
        np.testing.assert_allclose(scores, positive[:15], atol=1e-5)  # the same top list
        assert np.all(np.diff(scores) <= 0)


def test_bundle_without_weights_loads_none(tmp_path: Path) -> None:
    assert SparseItemItem.load(tmp_path) is None
