"""Train and evaluate every model on one split protocol (temporal or RecBole)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.baselines import ALS, ItemKNN, Popularity, interaction_matrix
from training.config import PipelineConfig
from training.data.movielens import MovieLens
from training.data.splits import Split
from training.evaluation.evaluate import (
    CURVE_KS,
    Queries,
    build_queries,
    head_aucs,
    list_metrics,
    pipeline_lists,
    top_k,
)  # fmt: skip
from training.evaluation.metrics import recall_curve, topk_metrics
from training.features.builder import FeatureBuilder
from training.models.ranker import MMoERanker
from training.models.two_tower import TwoTower
from training.ranking import score_candidates, train_ranker
from training.retrieval import example_times, item_embeddings, train_two_tower, user_embeddings

log = logging.getLogger(__name__)


@dataclass
class ProtocolResult:
    """Metrics per model, Recall@K curves, and the trained models with their feature builder."""

    metrics: dict[str, dict[str, float]]
    curves: dict[str, dict[int, float]]
    two_tower: TwoTower
    ranker: MMoERanker
    fb: FeatureBuilder
    item_emb: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def _now_per_user(log_: pd.DataFrame, default: float) -> dict[str, float]:
    last = log_.groupby("user_id")["timestamp"].max()
    return {u: float(t) + 1.0 for u, t in last.items()} | {"__default__": default}


def _queries(data: MovieLens, split: Split, target: pd.DataFrame, feature_log: pd.DataFrame,
             seen_log: pd.DataFrame, fb: FeatureBuilder, cfg: PipelineConfig) -> Queries:  # fmt: skip
    if split.temporal:
        now: dict[str, float] | float = split.test_time if target is split.test else split.val_time
    else:  # shuffled protocol: ask each user right after their last known event
        d = _now_per_user(feature_log, split.test_time)
        now = {u: d.get(u, d["__default__"]) for u in target["user_id"].unique()}
    return build_queries(target, seen_log, fb.user_index, fb.item_index, now,
                         fb.cfg.like_threshold, cfg.max_eval_users, cfg.seed)  # fmt: skip


def _hard_pool(
    model: TwoTower, fb: FeatureBuilder, train: pd.DataFrame, item_emb: np.ndarray, k: int
) -> np.ndarray:
    """Each user's top-k retrieved items at the end of the training log, training items removed."""
    n_users = len(fb.user_ids)
    last = train.groupby("user_id")["timestamp"].max()
    now = np.array([last.get(u, train["timestamp"].max()) + 1.0 for u in fb.user_ids])
    u = user_embeddings(model, fb.user_inputs(np.arange(n_users), now))
    seen = interaction_matrix(
        train["user_id"].map(fb.user_index).to_numpy(), train["item_id"].map(fb.item_index).to_numpy(),
        n_users, len(fb.item_ids),
    )  # fmt: skip
    return top_k(u @ item_emb.T, seen, k)


def run_protocol(
    data: MovieLens, split: Split, cfg: PipelineConfig, on_step: Callable[[], None] | None = None
) -> ProtocolResult:
    """Fit two-tower, ranker and baselines on ``split.train``; evaluate all on ``split.test``."""
    rcfg = cfg.retrieval
    rcfg.user_time = "event" if split.temporal else "last"
    fb = FeatureBuilder(data, split.train)
    val_q = _queries(data, split, split.val, split.train, split.train, fb, cfg)

    def validate(model: TwoTower) -> float:
        u = user_embeddings(model, fb.user_inputs(val_q.uidx, val_q.now))
        ranked = top_k(u @ item_embeddings(model, fb).T, val_q.seen, 10)
        return topk_metrics(ranked, val_q.relevant, (10,))["ndcg@10"]

    tt = train_two_tower(fb, split.train, rcfg, cfg.seed, on_step, validate)
    item_emb = item_embeddings(tt, fb)
    pool = _hard_pool(tt, fb, split.train, item_emb, cfg.ranker.hard_pool)
    ranker = train_ranker(fb, split.train, example_times(fb, split.train, rcfg.user_time), pool,
                          cfg.ranker, cfg.seed, on_step)  # fmt: skip

    # At test time the events before the test period (train + val) are known inputs; RecBole's
    # protocol instead feeds train only and masks train + val items.
    feature_log = pd.concat([split.train, split.val]) if split.temporal else split.train
    seen_log = pd.concat([split.train, split.val])
    fb_test = FeatureBuilder(data, feature_log, fb.cfg)
    q = _queries(data, split, split.test, feature_log, seen_log, fb_test, cfg)
    n_users, n_items = len(fb.user_ids), len(fb.item_ids)
    train_m = interaction_matrix(split.train["user_id"].map(fb.user_index).to_numpy(),
                                 split.train["item_id"].map(fb.item_index).to_numpy(), n_users, n_items)  # fmt: skip
    known_m = interaction_matrix(feature_log["user_id"].map(fb.user_index).to_numpy(),
                                 feature_log["item_id"].map(fb.item_index).to_numpy(), n_users, n_items)  # fmt: skip
    user_feeds = fb_test.user_inputs(q.uidx, q.now)
    scores = {
        "popularity": Popularity(known_m).scores(q.uidx),
        "als": ALS(
            train_m, cfg.als_factors, cfg.als_iterations, cfg.als_regularization, cfg.seed
        ).scores(q.uidx, known_m),
        "item_knn": ItemKNN(train_m, cfg.knn_neighbours).scores(q.uidx, known_m),
        "two_tower": user_embeddings(tt, user_feeds) @ item_emb.T,
    }
    depth = max(500, cfg.n_candidates)
    lists = {name: top_k(s, q.seen, min(depth, n_items)) for name, s in scores.items()}
    metrics = {name: list_metrics(r, q, fb.item_genres, n_items) for name, r in lists.items()}
    curves = {
        name: recall_curve(r, q.relevant, [k for k in CURVE_KS if k <= r.shape[1]])
        for name, r in lists.items()
    }

    cands = lists["two_tower"][:, : cfg.n_candidates]
    p_int, p_like, score = score_candidates(ranker, fb_test, user_feeds, cands, q.now)
    ranked, reranked = pipeline_lists(cands, score, item_emb, cfg.rerank_depth, cfg.mmr_lambda)
    aucs = head_aucs(cands, p_int, p_like, q)
    metrics["pipeline_ranked"] = list_metrics(ranked, q, fb.item_genres, n_items) | aucs
    metrics["pipeline"] = list_metrics(reranked, q, fb.item_genres, n_items) | aucs
    curves["pipeline"] = recall_curve(
        reranked, q.relevant, [k for k in CURVE_KS if k <= reranked.shape[1]]
    )
    for m in metrics.values():
        m["n_users"] = float(len(q.uidx))
    return ProtocolResult(
        metrics, curves, tt, ranker, fb, item_emb, {"user_feeds": user_feeds, "queries": q}
    )
