"""Baselines on the same splits: popularity, ALS (`implicit`), EASE and item-kNN (cosine).

Each ``scores(uidx, known)`` returns [n_users, n_items] scores from the events ``known`` at query
time; unknown (cold) users fall back to popularity so every model answers every query, as a
served system would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import scipy.sparse as sp


def interaction_matrix(
    uidx: np.ndarray, iidx: np.ndarray, n_users: int, n_items: int
) -> sp.csr_matrix:
    """Binary users×items CSR matrix."""
    m = sp.csr_matrix(
        (np.ones(len(uidx), dtype=np.float32), (uidx, iidx)), shape=(n_users, n_items)
    )
    m.data[:] = 1.0
    return m


class Popularity:
    """Items ranked by interaction count in the known log."""

    name = "popularity"

    def __init__(self, known: sp.csr_matrix):
        self.counts = _counts(known)

    def scores(self, uidx: np.ndarray, known: sp.csr_matrix | None = None) -> np.ndarray:
        """Same vector for every user: counts in ``known`` if given, else in the fitted log."""
        return np.tile(self.counts if known is None else _counts(known), (len(uidx), 1))


def _counts(known: sp.csr_matrix) -> np.ndarray:
    return np.asarray(known.sum(axis=0)).ravel().astype(np.float32)


def _with_fallback(
    out: np.ndarray, rows: sp.csr_matrix, uidx: np.ndarray, fallback: Popularity
) -> np.ndarray:
    """Popularity for the users without any known event."""
    cold = np.diff(rows.indptr) == 0
    if cold.any():
        out[cold] = fallback.scores(uidx[cold])
    return out


class ALS:
    """Implicit-feedback matrix factorisation (Hu et al.) from the ``implicit`` library."""

    name = "als"

    def __init__(self, train: sp.csr_matrix, factors: int, iterations: int, reg: float, seed: int):
        from implicit.cpu.als import AlternatingLeastSquares  # heavy import, training only

        self.model = AlternatingLeastSquares(
            factors=factors,
            iterations=iterations,
            regularization=reg,
            alpha=2.0,
            random_state=seed,
            num_threads=2,
        )
        self.model.fit(train, show_progress=False)
        self.fallback = Popularity(train)

    def scores(self, uidx: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        """User factors are re-solved from ``known`` (the events visible at query time)."""
        rows = known[uidx]
        uf = self.model.recalculate_user(uidx, rows)
        out = np.asarray(uf @ self.model.item_factors.T, dtype=np.float32)
        return _with_fallback(out, rows, uidx, self.fallback)


class ItemItem:
    """A linear item-to-item model: score(u, j) = Σ_i known(u, i) · weights[i, j]."""

    name = "item_item"

    def __init__(self, weights: np.ndarray, train: sp.csr_matrix):
        self.weights = weights.astype(np.float32)
        self.fallback = Popularity(train)

    def scores(self, uidx: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        """Scores from the user's known items; cold users get popularity."""
        rows = known[uidx]
        out = np.asarray(rows @ self.weights, dtype=np.float32)
        return _with_fallback(out, rows, uidx, self.fallback)


def ease_weights(train: sp.csr_matrix, lam: float) -> np.ndarray:
    """EASE (Steck 2019): B = I − P / diag(P) with P = (XᵀX + λI)⁻¹, so diag(B) = 0.

    B[i, j] = −P[i, j] / P[j, j] off the diagonal (column j divided by its diagonal entry).
    """
    g = np.asarray((train.T @ train).toarray(), dtype=np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b: np.ndarray = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


class EASE(ItemItem):
    """EASE, the closed-form linear item-item model with a zero diagonal."""

    name = "ease"

    def __init__(self, train: sp.csr_matrix, lam: float):
        super().__init__(ease_weights(train, lam), train)
        self.lam = lam


def top_n_per_row(weights: np.ndarray, n: int) -> sp.csr_matrix:
    """Each row's ``n`` weights of largest magnitude (zeros dropped): the sparse top-N form a
    dense item-item model is served in (``shared.models.item_item``). Negative weights matter:
    keeping the ``n`` largest instead cost EASE 0.011 NDCG@10 more at n = 100 (RecBole, seed 42)."""
    n = min(n, weights.shape[1])
    cols = np.argpartition(-np.abs(weights), n - 1, axis=1)[:, :n]
    vals = np.take_along_axis(weights, cols, axis=1).astype(np.float32)
    rows = np.repeat(np.arange(weights.shape[0]), n)
    m = sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=weights.shape)
    m.eliminate_zeros()
    m.sort_indices()
    return m


def cosine_similarity(train: sp.csr_matrix) -> np.ndarray:
    """[n_items, n_items] cosine similarity of the items' user columns, zero diagonal."""
    x = train.T.tocsr().astype(np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sp.diags(1.0 / np.maximum(norms, 1e-9)) @ x
    sim = np.asarray((x @ x.T).toarray(), dtype=np.float32)
    np.fill_diagonal(sim, 0.0)
    return sim


def keep_top_per_row(sim: np.ndarray, k: int) -> np.ndarray:
    """A copy of ``sim`` keeping each row's ``k`` largest entries (ties with the k-th kept too)."""
    out = sim.copy()
    if k < sim.shape[1]:
        cut = np.partition(sim, -k, axis=1)[:, -k][:, None]
        out[sim < cut] = 0.0
    return out


class ItemKNN(ItemItem):
    """Item-kNN as RecBole and most papers define it: each TARGET item j keeps its ``k`` most
    similar source items i (column j of the weights), score(u, j) = Σ_{i ∈ N_k(j) ∩ I_u} sim(i, j).
    """

    name = "item_knn"

    def __init__(self, train: sp.csr_matrix, neighbours: int):
        super().__init__(keep_top_per_row(cosine_similarity(train).T, neighbours).T, train)


class ItemKNNPerSource(ItemItem):
    """The project's earlier item-kNN: each SOURCE item i keeps its ``k`` most similar items j
    (row i of the weights). Weaker than the per-target variant; kept so the report shows both."""

    name = "item_knn_per_source"

    def __init__(self, train: sp.csr_matrix, neighbours: int):
        super().__init__(keep_top_per_row(cosine_similarity(train), neighbours), train)


M = TypeVar("M")


def choose_on_validation(
    grid: Sequence[float], fit: Callable[[float], M], validate: Callable[[M], float]
) -> tuple[M, dict[float, float]]:
    """The model of ``grid`` with the best validation score (higher is better), and every score."""
    best: tuple[float, M] | None = None
    scores: dict[float, float] = {}
    for value in grid:
        model = fit(value)
        scores[value] = validate(model)
        if best is None or scores[value] > best[0]:
            best = (scores[value], model)
    if best is None:
        raise ValueError("empty grid")
    return best[1], scores
