"""Evaluate retrieval, baselines and the whole pipeline on one split's held-out events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from training.evaluation.metrics import (
    auc,
    coverage,
    intra_list_diversity,
    recall_curve,
    topk_metrics,
)
from training.evaluation.rerank import mmr

log = logging.getLogger(__name__)

RETRIEVAL_KS = (10, 50, 100, 500)
CURVE_KS = (1, 5, 10, 20, 50, 100, 200, 300, 500)


@dataclass
class Queries:
    """Who is asked, what they already saw, and what they will interact with."""

    uidx: np.ndarray  # [n] user indices
    now: np.ndarray  # [n] query times
    seen: sp.csr_matrix  # users × items: excluded from every list
    relevant: list[set[int]]  # held-out items per query user
    liked: list[set[int]]  # held-out items rated >= like threshold


def build_queries(
    target: pd.DataFrame,
    seen_log: pd.DataFrame,
    user_index: dict[str, int],
    item_index: dict[str, int],
    now: dict[str, float] | float,
    like_threshold: float,
    max_users: int | None = None,
    seed: int = 0,
) -> Queries:
    """One query per user with held-out events; ``now`` per user id or one global time."""
    users = sorted(target["user_id"].unique(), key=lambda u: user_index[u])
    if max_users and len(users) > max_users:
        rng = np.random.default_rng(seed)
        users = sorted(
            rng.choice(users, max_users, replace=False).tolist(), key=lambda u: user_index[u]
        )
    pos = {u: r for r, u in enumerate(users)}
    relevant: list[set[int]] = [set() for _ in users]
    liked: list[set[int]] = [set() for _ in users]
    for u, it, r in zip(target["user_id"], target["item_id"], target["rating"], strict=True):
        if u in pos:
            relevant[pos[u]].add(item_index[it])
            if r >= like_threshold:
                liked[pos[u]].add(item_index[it])
    seen = query_item_matrix(seen_log, pos, item_index)
    now_arr = np.array([now[u] if isinstance(now, dict) else now for u in users], dtype=np.float64)
    uidx = np.array([user_index[u] for u in users], dtype=np.int64)
    return Queries(uidx, now_arr, seen, relevant, liked)


def query_item_matrix(
    events: pd.DataFrame, row_of_user: dict[str, int], item_index: dict[str, int]
) -> sp.csr_matrix:
    """queries × items, 1 where the query's user (``row_of_user``: user id → row) has an event
    of ``events`` on the item; users without a row are ignored."""
    su = events["user_id"].map(row_of_user)
    ok = su.notna().to_numpy()
    return sp.csr_matrix(
        (
            np.ones(int(ok.sum()), dtype=np.float32),
            (su[ok].to_numpy(np.int64), events["item_id"][ok].map(item_index).to_numpy(np.int64)),
        ),
        shape=(len(row_of_user), len(item_index)),
    )


def top_k(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """Best ``k`` unseen items per row."""
    s = scores.astype(np.float32, copy=True)
    r, c = seen.nonzero()
    s[r, c] = -np.inf
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def merged_candidates(
    tt_scores: np.ndarray,
    ease_scores: np.ndarray,
    history: sp.csr_matrix,
    seen: sp.csr_matrix,
    n_tt: int,
    n_ease: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidates, retrieved, valid), each [n, n_tt + n_ease], as candidate generation and
    the seen filter make them: the two-tower's top ``n_tt`` items outside the request's
    ``history`` (the source over-fetches by the history's length and drops it), then the EASE
    source's top ``n_ease`` outside it with a positive score, an item both found kept once at
    its two-tower place (``retrieved``); ``valid`` = retrieved and not ``seen`` (the filter).
    Other slots hold a real item of the row (its first); rank and count only the valid ones."""
    tt = top_k(tt_scores, history, n_tt)
    ok = np.ones(tt.shape, dtype=bool)
    cands = tt
    if n_ease > 0:
        ez = top_k(ease_scores, history, n_ease)
        positive = np.take_along_axis(ease_scores, ez, axis=1) > 0
        fresh = np.array([~np.isin(e, t) for e, t in zip(ez, tt, strict=True)]).reshape(ez.shape)
        ok = np.concatenate([ok, positive & fresh], axis=1)
        cands = np.concatenate([tt, ez], axis=1)
    cands = np.where(ok, cands, tt[:, :1])
    is_seen = np.asarray(seen[np.arange(len(cands))[:, None], cands].todense(), dtype=bool)
    return cands, ok, ok & ~is_seen


def ease_matrix(known: sp.csr_matrix, weights: sp.csr_matrix) -> np.ndarray:
    """[n, n_items] float32 EASE scores: each row's known items' weights summed (what the
    served source computes from the user's history; cold rows score 0)."""
    return np.asarray((known @ weights).todense(), dtype=np.float32)


def list_metrics(
    ranked: np.ndarray, q: Queries, genres: np.ndarray, n_items: int
) -> dict[str, float]:
    """@10 ranking metrics, recall at the retrieval depths it can reach, coverage, diversity."""
    out = topk_metrics(ranked[:, :10], q.relevant, (10,))
    for k in RETRIEVAL_KS[1:]:
        if ranked.shape[1] >= k:
            out[f"recall@{k}"] = recall_curve(ranked, q.relevant, (k,))[k]
    out["coverage@10"] = coverage(ranked[:, :10], n_items)
    out["ild@10"] = intra_list_diversity(ranked[:, :10], genres)
    return out


def candidate_recall(lists: Sequence[np.ndarray], relevant: Sequence[set[int]]) -> float:
    """Mean over users of the share of their relevant items in the union of ``lists`` (each
    [n_users, k_i]): what a ranker given those candidates could reach at most."""
    shares = [
        len(set(np.concatenate(rows).tolist()) & rel) / len(rel)
        for rows, rel in zip(zip(*lists, strict=True), relevant, strict=True)
    ]
    return float(np.mean(shares))


def pipeline_lists(
    candidates: np.ndarray,
    ranker_scores: np.ndarray,
    item_vectors: np.ndarray,
    depth: int,
    lam: float,
    n_pick: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """(ranked, re-ranked) lists: candidates sorted by ranker score, then MMR on the top."""
    order = np.argsort(-ranker_scores, axis=1, kind="stable")
    ranked = np.take_along_axis(candidates, order, axis=1)
    scores_sorted = np.take_along_axis(ranker_scores, order, axis=1)
    reranked = ranked.copy()
    for r in range(len(ranked)):
        head = mmr(ranked[r, :depth], scores_sorted[r, :depth], item_vectors, lam, n_pick)
        reranked[r, :depth] = head
    return ranked, reranked


def head_aucs(
    candidates: np.ndarray,
    p_int: np.ndarray,
    p_like: np.ndarray,
    q: Queries,
    valid: np.ndarray | None = None,
) -> dict[str, float]:
    """AUC of each ranker head over the retrieved candidates (labels from held-out events;
    ``valid`` [n, K] picks the real candidate slots)."""
    y_int = np.array(
        [[c in rel for c in row] for row, rel in zip(candidates, q.relevant, strict=True)]
    )
    y_like = np.array([[c in lk for c in row] for row, lk in zip(candidates, q.liked, strict=True)])
    ok = np.ones(candidates.shape, dtype=bool) if valid is None else valid
    return {
        "auc_interact": auc(p_int[ok], y_int[ok]),
        "auc_like": auc(p_like[ok], y_like[ok]),
    }
