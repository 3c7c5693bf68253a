"""Top-K ranking metrics (RecBole definitions), AUC, coverage and intra-list diversity.

Inputs are plain arrays: ``ranked`` [n_users, K] item indices best first, ``relevant`` a list of
sets of item indices per user. Users without relevant items are excluded by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def hit_matrix(ranked: np.ndarray, relevant: Sequence[set[int]]) -> np.ndarray:
    """[n, K] bool: is the item at each rank relevant."""
    return np.array(
        [[int(i) in rel for i in row] for row, rel in zip(ranked, relevant, strict=True)],
        dtype=bool,
    ).reshape(ranked.shape)


def topk_metrics(
    ranked: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int] = (10,)
) -> dict[str, float]:
    """Mean over users of recall, precision, hit, ndcg, mrr and map at each k."""
    hits = hit_matrix(ranked, relevant).astype(np.float64)
    n_rel = np.array([len(r) for r in relevant], dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        h = hits[:, :k]
        cum = h.cumsum(axis=1)
        ranks = np.arange(1, h.shape[1] + 1, dtype=np.float64)
        out[f"recall@{k}"] = float(np.mean(cum[:, -1] / n_rel))
        out[f"precision@{k}"] = float(np.mean(cum[:, -1] / k))
        out[f"hit@{k}"] = float(np.mean(cum[:, -1] > 0))
        dcg = (h / np.log2(ranks + 1)).sum(axis=1)
        ideal_n = np.minimum(n_rel, k).astype(int)
        idcg_table = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
        out[f"ndcg@{k}"] = float(np.mean(dcg / idcg_table[ideal_n]))
        first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, np.inf)
        out[f"mrr@{k}"] = float(np.mean(1.0 / first))
        # RecBole MAP@k: mean of precision at each hit, over min(|relevant|, k).
        ap = ((cum / ranks) * h).sum(axis=1) / np.minimum(n_rel, k)
        out[f"map@{k}"] = float(np.mean(ap))
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC via the rank statistic (ties get their average rank); NaN if one class only."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def coverage(ranked: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    return float(len(np.unique(ranked)) / n_items)


def intra_list_diversity(ranked: np.ndarray, item_vectors: np.ndarray) -> float:
    """Mean over lists of the average pairwise cosine distance of the listed items' vectors."""
    v = np.asarray(item_vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    k = ranked.shape[1]
    if k < 2:
        return 0.0
    x = v[ranked]  # [n, k, d]
    sim = np.einsum("nid,njd->nij", x, x)
    off = (sim.sum(axis=(1, 2)) - np.trace(sim, axis1=1, axis2=2)) / (k * (k - 1))
    return float(np.mean(1.0 - off))


def recall_curve(
    ranked: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int]
) -> dict[int, float]:
    """Recall@k for each k (lists must be at least max(ks) long)."""
    hits = hit_matrix(ranked[:, : max(ks)], relevant).astype(np.float64).cumsum(axis=1)
    n_rel = np.array([len(r) for r in relevant], dtype=np.float64)
    return {k: float(np.mean(hits[:, k - 1] / n_rel)) for k in ks}
