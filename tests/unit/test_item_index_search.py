"""ItemIndex: exact search (small catalogues) and the HNSW graph give the same neighbours, and
``search_excluding`` never returns an excluded item in either mode."""

from __future__ import annotations

import hnswlib
import numpy as np
import pytest

from shared.models.item_index import ItemIndex


def _index(n: int = 600, dim: int = 16, seed: int = 0) -> tuple[ItemIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    graph = hnswlib.Index(space="ip", dim=dim)
    graph.init_index(max_elements=n, M=16, ef_construction=200)
    graph.add_items(emb, np.arange(n))
    return ItemIndex(graph, [f"i{r}" for r in range(n)], emb, {"ef_search": 200}), emb


def _modes(index: ItemIndex) -> dict[str, ItemIndex]:
    ann = ItemIndex(index.index, index.ids(np.arange(len(index))), index._emb, index.meta)
    ann.exact_max_items = 0
    return {"exact": index, "ann": ann}


def test_exact_and_ann_agree_with_brute_force() -> None:
    index, emb = _index()
    rng = np.random.default_rng(1)
    queries = emb[rng.choice(len(emb), 20, replace=False)] + 0.1
    truth = np.argsort(-(queries @ emb.T), axis=1)[:, :50]
    for mode, ix in _modes(index).items():
        labels, sims = ix.search(queries, 50)
        assert labels.shape == sims.shape == (20, 50)
        assert np.all(np.diff(sims, axis=1) <= 1e-6), mode  # best first
        recall = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(labels, truth, strict=True)])
        assert recall >= (1.0 if mode == "exact" else 0.95), (mode, recall)
        np.testing.assert_allclose(sims, np.take_along_axis(queries @ emb.T, labels, 1), atol=1e-5)


@pytest.mark.parametrize("mode", ["exact", "ann"])
def test_search_excluding_drops_the_excluded_and_fills_the_quota(mode: str) -> None:
    index, emb = _index()
    ix = _modes(index)[mode]
    query = emb[3]
    nearest = np.argsort(-(emb @ query))
    exclude = np.concatenate([nearest[:40], [-1, -1], nearest[:5]])  # repeats, unknown rows
    labels, sims = ix.search_excluding(query, 30, exclude)
    assert len(labels) == 30 and not set(labels.tolist()) & set(nearest[:40].tolist())
    assert np.all(np.diff(sims) <= 1e-6)
    # the best 30 of the rest: exactly for the exact search, nearly for the graph
    overlap = len(set(labels.tolist()) & set(nearest[40:70].tolist())) / 30
    assert overlap >= (1.0 if mode == "exact" else 0.9)


def test_excluding_almost_everything_returns_what_is_left() -> None:
    index, emb = _index(n=50)
    labels, _ = index.search_excluding(emb[0], 30, np.arange(45))
    assert sorted(labels.tolist()) == [45, 46, 47, 48, 49]


def test_items_added_at_run_time_are_found_exactly() -> None:
    index, emb = _index(n=100)
    vec = -emb[7:8]  # far from item 7, so it is nobody's accidental neighbour
    index.add(["new"], vec)
    labels, sims = index.search(vec, 1)
    assert index.ids(labels[0]) == ["new"] and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert index.exact and len(index) == 101


@pytest.mark.parametrize("mode", ["exact", "ann"])
def test_neighbours_are_the_searched_ones_and_follow_adds(mode: str) -> None:
    index, emb = _index()
    ix = _modes(index)[mode]
    rows = np.array([7, 3, 7, 500])  # a repeated row too
    labels, sims = ix.neighbours(rows, 20)
    want_labels, want_sims = ix.search(emb[rows], 20)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(sims, want_sims, atol=1e-6)
    # a shorter ask is the remembered list's prefix; a longer one is searched again
    short, _ = ix.neighbours(rows[:2], 5)
    np.testing.assert_array_equal(short, want_labels[:2, :5])
    longer, _ = ix.neighbours(rows[:1], 40)
    np.testing.assert_array_equal(longer[0], ix.search(emb[rows[:1]], 40)[0][0])
    # an item added next to row 7 becomes its nearest neighbour (after itself)
    twin = emb[7] + 1e-3
    (new_row,) = ix.add(["twin"], (twin / np.linalg.norm(twin)).reshape(1, -1))
    after, _ = ix.neighbours(np.array([7]), 20)
    assert new_row in after[0][:2].tolist()
    assert ix.neighbours(np.zeros(0, np.int64), 20)[0].shape == (0, 20)
