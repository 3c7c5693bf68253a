"""Baselines on the same splits: popularity, ALS (`implicit`) and item-kNN (cosine).

Each ``scores(uidx)`` returns [n_users, n_items] scores; unknown (cold) users fall back to
popularity so every model answers every query, as a served system would.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


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
        self.counts = np.asarray(known.sum(axis=0)).ravel().astype(np.float32)

    def scores(self, uidx: np.ndarray) -> np.ndarray:
        """Same popularity vector for every user."""
        return np.tile(self.counts, (len(uidx), 1))


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

    def scores(self, uidx: np.ndarray, known: sp.csr_matrix | None = None) -> np.ndarray:
        """User factors are re-solved from ``known`` (the events visible at query time)."""
        if known is not None:
            uf = self.model.recalculate_user(uidx, known[uidx])
        else:
            uf = self.model.user_factors[uidx]
        out = np.asarray(uf @ self.model.item_factors.T, dtype=np.float32)
        rows = known[uidx] if known is not None else None
        cold = (
            np.asarray(rows.sum(axis=1)).ravel() == 0
            if rows is not None
            else np.zeros(len(uidx), bool)
        )
        if cold.any():
            out[cold] = self.fallback.scores(uidx[cold])
        return out


class ItemKNN:
    """Item-to-item cosine neighbours: score = sum of similarities to the user's items."""

    name = "item_knn"

    def __init__(self, train: sp.csr_matrix, neighbours: int):
        x = train.T.tocsr().astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        x = sp.diags(1.0 / np.maximum(norms, 1e-9)) @ x
        sim = (x @ x.T).toarray()
        np.fill_diagonal(sim, 0.0)
        if neighbours < sim.shape[0]:  # keep only each item's top neighbours
            cut = np.partition(sim, -neighbours, axis=1)[:, -neighbours][:, None]
            sim[sim < cut] = 0.0
        self.sim = sim.astype(np.float32)
        self.fallback = Popularity(train)

    def scores(self, uidx: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        """Scores from the user's known items; cold users get popularity."""
        rows = known[uidx]
        out = np.asarray(rows @ self.sim, dtype=np.float32)
        cold = np.asarray(rows.sum(axis=1)).ravel() == 0
        if cold.any():
            out[cold] = self.fallback.scores(uidx[cold])
        return out
