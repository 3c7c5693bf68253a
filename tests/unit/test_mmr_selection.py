"""MMR's greedy selection against a plain reference: the same picks and redundancies on random
lists, with and without the genre cap (the fast form keeps running minima, not the textbook
recomputation, so they must agree exactly)."""

from __future__ import annotations

import numpy as np
import pytest

from services.reranking.rerankers.mmr_reranker import MMRReranker, similarity
from shared.features.genre_mask import genre_columns


def reference(
    rel: np.ndarray, sim: np.ndarray, genres: np.ndarray, masks: list[int], k: int,
    lam: float, cap: int,
) -> tuple[list[int], list[float]]:  # fmt: skip
    """Textbook MMR: each step recomputes every item's value from the picks so far; an item of
    a full genre waits while any other item is left."""
    picked: list[int] = []
    redundancy: list[float] = []
    count = np.zeros(genres.shape[1], dtype=int)
    for _ in range(k):
        best, best_value, best_red = -1, -np.inf, 0.0
        full = {g for g in range(genres.shape[1]) if count[g] >= cap}
        open_items = [i for i in range(len(rel)) if i not in picked
                      and not (set(genre_columns(masks[i])) & full)]  # fmt: skip
        pool = open_items or [i for i in range(len(rel)) if i not in picked]
        for i in pool:
            red = max((float(sim[p, i]) for p in picked), default=0.0)
            value = np.float32(lam * rel[i]) - np.float32(1 - lam) * np.float32(red)
            if value > best_value:
                best, best_value, best_red = i, value, red
        picked.append(best)
        redundancy.append(best_red)
        for g in genre_columns(masks[best]):
            count[g] += 1
    return picked, redundancy


@pytest.mark.parametrize("cap", [2, 3, 1000])
def test_the_selection_equals_textbook_mmr(cap: int) -> None:
    rng = np.random.default_rng(cap)
    for case in range(40):
        n, k = int(rng.integers(5, 60)), int(rng.integers(1, 25))
        k = min(k, n)
        masks = [int(m) for m in rng.integers(1, 1 << 6, n)]  # up to 6 genres each
        genres = np.array([[(m >> g) & 1 for g in range(19)] for m in masks], dtype=np.float32)
        emb = rng.standard_normal((n, 8)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        sim = similarity(genres, emb, float(rng.random()))
        rel = rng.random(n).astype(np.float32)
        lam = float(rng.choice([0.0, 0.3, 0.7, 1.0]))
        got, red = MMRReranker._select(rel, sim, genres > 0, masks, k, lam, cap)
        want, want_red = reference(rel, sim, genres, masks, k, lam, cap)
        assert got.tolist() == want, (case, n, k, lam)
        np.testing.assert_allclose(red, want_red, atol=1e-6)
