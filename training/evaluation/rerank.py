"""Maximal Marginal Relevance re-ranking (the offline twin of the re-ranking stage)."""

from __future__ import annotations

import numpy as np


def mmr(
    items: np.ndarray, relevance: np.ndarray, vectors: np.ndarray, lam: float, n_pick: int
) -> np.ndarray:
    """Greedy MMR over one ranked list: pick argmax lam·rel − (1−lam)·max-sim-to-picked.

    Relevance is min-max scaled within the list; items not picked keep their original order after
    the picked ones.
    """
    rel = relevance.astype(np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.zeros_like(rel)
    v = vectors[items]
    sim = v @ v.T
    picked: list[int] = []
    max_sim = np.zeros(len(items))
    free = np.ones(len(items), dtype=bool)
    for _ in range(min(n_pick, len(items))):
        gain = np.where(free, lam * rel - (1.0 - lam) * max_sim, -np.inf)
        j = int(np.argmax(gain))
        picked.append(j)
        free[j] = False
        max_sim = np.maximum(max_sim, sim[j])
    rest = [j for j in range(len(items)) if free[j]]
    return items[np.array(picked + rest, dtype=np.int64)]
