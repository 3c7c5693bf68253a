"""Train and evaluate every model on one split protocol (temporal or RecBole)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shared.datasets.movielens import MovieLens
from shared.features.config import FeatureConfig
from training.baselines import (
    ALS,
    EASE,
    ItemItem,
    ItemKNN,
    ItemKNNPerSource,
    Popularity,
    choose_on_validation,
    ease_weights,
    interaction_matrix,
    top_n_per_row,
)
from training.config import PipelineConfig
from training.data.splits import Split, ranker_holdout
from training.evaluation.evaluate import (
    CURVE_KS,
    Queries,
    build_queries,
    ease_matrix,
    head_aucs,
    list_metrics,
    merged_candidates,
    pipeline_lists,
    query_item_matrix,
    top_k,
)
from training.evaluation.metrics import recall_curve, topk_metrics
from training.features.builder import FeatureBuilder
from training.models.ranker import MMoERanker, frozen_copy
from training.models.two_tower import TwoTower
from training.ranking import (
    build_examples,
    concat_examples,
    rating_lookup,
    score_candidates,
    train_ranker,
)
from training.retrieval import item_embeddings, train_two_tower, user_embeddings

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


def _queries(
    split: Split,
    target: pd.DataFrame,
    feature_log: pd.DataFrame,
    seen_log: pd.DataFrame,
    fb: FeatureBuilder,
    now: float,
    max_users: int | None,
    seed: int,
) -> Queries:
    """One query per ``target`` user at ``now`` (temporal) or right after the user's last
    ``feature_log`` event (shuffled protocol); ``seen_log`` items are excluded from answers."""
    when: dict[str, float] | float = now
    if not split.temporal:
        d = _now_per_user(feature_log, now)
        when = {u: d.get(u, d["__default__"]) for u in target["user_id"].unique()}
    return build_queries(
        target, seen_log, fb.user_index, fb.item_index, when, fb.cfg.like_threshold, max_users, seed
    )


def _validator(fb: FeatureBuilder, val_q: Queries) -> Callable[[TwoTower], float]:
    """NDCG@10 of a two-tower on the validation queries (features from ``fb``)."""
    users = fb.user_inputs(val_q.uidx, val_q.now)

    def validate(model: TwoTower) -> float:
        ranked = top_k(user_embeddings(model, users) @ item_embeddings(model, fb).T, val_q.seen, 10)
        return topk_metrics(ranked, val_q.relevant, (10,))["ndcg@10"]

    return validate


@dataclass
class Retrieval:
    """What retrieval hands the ranker: a two-tower and the EASE source's sparse weights."""

    two_tower: TwoTower
    item_item: sp.csr_matrix
    n_tt: int  # two-tower quota
    n_ease: int  # EASE quota

    def candidates(
        self, fb: FeatureBuilder, users: dict[str, np.ndarray], q: Queries, history: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(candidates, valid, similarity, EASE score), each [n_queries, n_tt + n_ease], of the
        queries ``q`` (user-tower inputs ``users``; ``history`` queries × items: the stored
        window the sources read); ``valid`` also passed the seen filter."""
        cands, _, valid, sim, ease = self.retrieve(fb, users, q, history)
        return cands, valid, sim, ease

    def retrieve(
        self, fb: FeatureBuilder, users: dict[str, np.ndarray], q: Queries, history: sp.csr_matrix
    ) -> tuple[np.ndarray, ...]:
        """:meth:`candidates` with the ``retrieved`` mask (before the seen filter) second."""
        u = user_embeddings(self.two_tower, users)
        v = item_embeddings(self.two_tower, fb)
        tt = u @ v.T
        ease = ease_matrix(history, self.item_item)
        cands, retrieved, valid = merged_candidates(tt, ease, history, q.seen, self.n_tt,
                                                    self.n_ease)  # fmt: skip
        take = np.take_along_axis
        return cands, retrieved, valid, take(tt, cands, axis=1), take(ease, cands, axis=1)


def rank_valid(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scores with the invalid (duplicate) candidate slots at -inf."""
    return np.where(valid, scores, -np.inf).astype(np.float32)


def _ndcg_of(cands: np.ndarray, score: np.ndarray, q: Queries) -> float:
    ranked = np.take_along_axis(cands, np.argsort(-score, axis=1, kind="stable")[:, :10], axis=1)
    return topk_metrics(ranked, q.relevant, (10,))["ndcg@10"]


BLEND_GRID = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def choose_blend(
    sim: np.ndarray,
    ease: np.ndarray,
    valid: np.ndarray,
    cands: np.ndarray,
    q: Queries,
    temperature: float,
) -> tuple[float, dict[float, float]]:
    """EASE weight ``a`` of the retrieval blend sim / temperature + a · EASE score with the best
    validation NDCG@10 (the untrained ranker's order; the ranker starts from it)."""
    grid = {
        a: _ndcg_of(cands, rank_valid(sim / temperature + a * ease, valid), q) for a in BLEND_GRID
    }
    best = max(grid, key=lambda a: (grid[a], -a))
    return best, grid


def _ranker_validator(
    fb: FeatureBuilder, val_q: Queries, retrieval: Retrieval, known: sp.csr_matrix
) -> tuple[Callable[[MMoERanker], float], tuple[np.ndarray, ...]]:
    """NDCG@10 on the validation queries of ``retrieval``'s candidates ordered by a ranker, and
    those candidates (candidates, valid, similarity, EASE score)."""
    users = fb.user_inputs(val_q.uidx, val_q.now)
    cands, valid, sim, ease = retrieval.candidates(fb, users, val_q, known)

    def validate(ranker: MMoERanker) -> float:
        score = score_candidates(ranker, fb, users, cands, val_q.now, ease)[2]
        return _ndcg_of(cands, rank_valid(score, valid), val_q)

    return validate, (cands, valid, sim, ease)


def sparse_ease(events: sp.csr_matrix, lam: float, top_n: int) -> sp.csr_matrix:
    """EASE fit on ``events`` (users × items), its ``top_n`` weights per row: what is served."""
    return top_n_per_row(ease_weights(events, lam), top_n).tocsr().astype(np.float32)


def train_stack(
    data: MovieLens,
    split: Split,
    fb: FeatureBuilder,
    val_q: Queries,
    cfg: PipelineConfig,
    on_step: Callable[[int], None] | None = None,
    ease_lambda: float = 500.0,
) -> tuple[TwoTower, MMoERanker, dict[str, Any]]:
    """Retrieval and ranker, trained so that the ranker never learns from pairs retrieval fit.

    1. A two-tower and an EASE (λ ``ease_lambda``, top weights per item as served) fit on
       ``holdout.fit`` answer queries for the hold-out period; the ranker learns from their
       merged candidates, labelled by the hold-out events, with their similarities and EASE
       scores. It is validated with them, which on the validation period are as far behind as
       the served ones are on the test period. The weight of EASE in the ranker's starting
       blend is chosen there first.
    2. The served two-tower is fit on every training event (``cfg.refit_retrieval``; otherwise
       the first one serves) and replaces the ranker's frozen copy: on (user, item) pairs it did
       not fit, its similarity behaves as the first model's did on the hold-out pairs.
    Validation picks the two-tower epochs and the ranker checkpoint (the untrained ranker, which
    orders candidates exactly as retrieval does, is one of the checkpoints).
    """
    validate = _validator(fb, val_q)
    hold = ranker_holdout(split, cfg.ranker.holdout_frac, cfg.seed, cfg.ranker.query_times)
    fb_fit = FeatureBuilder(data, hold.fit, fb.cfg)
    tt_fit = train_two_tower(fb_fit, hold.fit, cfg.retrieval, cfg.seed, on_step, validate)
    ease_fit = sparse_ease(_known_matrix(hold.fit, fb), ease_lambda, cfg.item_item_top_n)
    retrieval = Retrieval(tt_fit, ease_fit, cfg.n_candidates, cfg.ease_candidates)
    ratings = rating_lookup(hold.hold, fb.user_index, fb.item_index)
    rng = np.random.default_rng(cfg.seed + 2)
    # The user's validation and test items are positives the protocol hides, not negatives:
    # under RecBole's shuffle they made about two thirds of the retrieved positives label 0.
    held_out = pd.concat([split.val, split.test]) if cfg.ranker.mask_held_out else None
    parts = []
    for known, target, now in hold.query_sets():
        fb_known = FeatureBuilder(data, known, fb.cfg)
        q = _queries(
            split,
            target,
            known,
            known,
            fb_known,
            split.val_time if now is None else now,
            None,
            cfg.seed,
        )
        not_negative = None
        if held_out is not None:
            rows = {fb.user_ids[u]: r for r, u in enumerate(q.uidx)}
            not_negative = query_item_matrix(held_out, rows, fb.item_index)
        window = query_item_matrix(
            recent(known, cfg.ease_history),
            {fb.user_ids[u]: r for r, u in enumerate(q.uidx)},
            fb.item_index,
        )
        parts.append(
            build_examples(
                tt_fit,
                fb_known,
                q,
                ratings,
                cfg.n_candidates,
                cfg.ranker.n_random_negatives,
                rng,
                not_negative,
                ease_fit,
                cfg.ease_candidates,
                window,
            )
        )
    validate_ranker, (cands, valid, sim, ease) = _ranker_validator(
        fb, val_q, retrieval, _known_matrix(recent(split.train, cfg.ease_history), fb)[val_q.uidx]
    )
    scale, grid = choose_blend(sim, ease, valid, cands, val_q, cfg.retrieval.temperature)
    log.info("retrieval blend: EASE weight %s (validation NDCG@10 by weight: %s)", scale,
             {a: round(v, 4) for a, v in grid.items()})  # fmt: skip
    ranker, summary = train_ranker(
        concat_examples(parts),
        tt_fit,
        cfg.retrieval.temperature,
        cfg.ranker,
        cfg.seed,
        on_step,
        validate_ranker,
        fb.cfg,
        scale,
    )
    summary["blend_val_ndcg@10"] = {str(a): v for a, v in grid.items()}
    if not cfg.refit_retrieval:
        return tt_fit, ranker, summary
    tt = train_two_tower(fb, split.train, cfg.retrieval, cfg.seed, on_step, validate)
    ranker.retrieval = frozen_copy(tt)
    return tt, ranker, summary


@dataclass
class Period:
    """One evaluation period: its queries, the features at query time and the known events."""

    q: Queries
    fb: FeatureBuilder
    known: sp.csr_matrix
    window: sp.csr_matrix  # users × items: the stored history window (what the EASE source reads)


def recent(events: pd.DataFrame, n: int) -> pd.DataFrame:
    """Each user's ``n`` latest events (by timestamp, ties by order): the history window the
    online store keeps (``StoreConfig.history_cap``) and the EASE source scores from."""
    ordered = events.sort_values("timestamp", kind="stable")
    return ordered.groupby("user_id", sort=False).tail(n)


def _known_matrix(events: pd.DataFrame, fb: FeatureBuilder) -> sp.csr_matrix:
    return interaction_matrix(
        events["user_id"].map(fb.user_index).to_numpy(),
        events["item_id"].map(fb.item_index).to_numpy(),
        len(fb.user_ids),
        len(fb.item_ids),
    )


def _ndcg_at_10(scores: np.ndarray, q: Queries) -> float:
    return topk_metrics(top_k(scores, q.seen, 10), q.relevant, (10,))["ndcg@10"]


def fit_baselines(train_m: sp.csr_matrix, val: Period, cfg: PipelineConfig) -> dict[str, Any]:
    """Every baseline fit on the training events; EASE's λ is chosen on ``val`` (NDCG@10)."""
    ease, grid = choose_on_validation(
        cfg.ease_lambdas,
        lambda lam: EASE(train_m, lam),
        lambda m: _ndcg_at_10(m.scores(val.q.uidx, val.known), val.q),
    )
    shown = {lam: round(v, 4) for lam, v in grid.items()}
    log.info("EASE: λ = %s chosen on validation (NDCG@10 by λ: %s)", ease.lam, shown)
    return {
        "popularity": Popularity(train_m),
        "als": ALS(train_m, cfg.als_factors, cfg.als_iterations, cfg.als_regularization, cfg.seed),
        "item_knn_per_source": ItemKNNPerSource(train_m, cfg.knn_neighbours),
        "item_knn": ItemKNN(train_m, cfg.knn_neighbours),
        "ease": ease,
        # What candidate generation serves: EASE's top weights per source item.
        "ease_sparse": ItemItem(
            top_n_per_row(ease.weights, cfg.item_item_top_n).toarray(), train_m
        ),
    }


def evaluate_period(
    p: Period,
    baselines: dict[str, Any],
    tt: TwoTower,
    ranker: MMoERanker,
    item_emb: np.ndarray,
    cfg: PipelineConfig,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[int, float]], dict[str, Any]]:
    """Metrics and Recall@K curves of every model, and the pipeline, on one period's queries.

    The pipeline ranks the merged candidates of the two-tower (top ``n_candidates``) and the
    served EASE source (top ``ease_candidates``), each with its EASE score as a feature."""
    q, n_items = p.q, len(p.fb.item_ids)
    user_feeds = p.fb.user_inputs(q.uidx, q.now)
    scores = {name: b.scores(q.uidx, p.known) for name, b in baselines.items()}
    scores["two_tower"] = user_embeddings(tt, user_feeds) @ item_emb.T
    depth = max(500, cfg.n_candidates)
    lists = {name: top_k(s, q.seen, min(depth, n_items)) for name, s in scores.items()}
    metrics = {name: list_metrics(r, q, p.fb.item_genres, n_items) for name, r in lists.items()}
    known = p.window[q.uidx]
    retrieval = Retrieval(tt, sp.csr_matrix(baselines["ease_sparse"].weights), cfg.n_candidates,
                          cfg.ease_candidates)  # fmt: skip
    cands, retrieved, valid, _, ease = retrieval.retrieve(p.fb, user_feeds, q, known)
    p_int, p_like, score = score_candidates(ranker, p.fb, user_feeds, cands, q.now, ease)
    ranked, reranked = pipeline_lists(
        cands, rank_valid(score, valid), item_emb, cfg.rerank_depth, cfg.mmr_lambda
    )
    order = np.argsort(-rank_valid(score, valid), axis=1, kind="stable")
    tail = ~np.take_along_axis(valid, order, axis=1)  # duplicate slots, ranked last
    ranked[tail], reranked[tail] = -1, -1
    aucs = head_aucs(cands, p_int, p_like, q, valid)
    metrics["pipeline_ranked"] = list_metrics(ranked, q, p.fb.item_genres, n_items) | aucs
    metrics["pipeline"] = list_metrics(reranked, q, p.fb.item_genres, n_items) | aucs
    # Retrieval's share of the relevant items: the two-tower alone, and with the EASE source.
    n = cfg.n_candidates
    tt_rows = [c[:n][ok[:n]] for c, ok in zip(cands, valid, strict=True)]
    metrics["pipeline"]["candidate_recall_two_tower"] = candidate_recall_rows(tt_rows, q.relevant)
    metrics["pipeline"]["candidate_recall"] = candidate_recall_rows(
        [c[ok] for c, ok in zip(cands, valid, strict=True)], q.relevant
    )
    ease_full = ease_matrix(known, retrieval.item_item)
    metrics["pipeline"].update(stage_attribution(cands, retrieved, valid, q, ranked, reranked))
    lists["pipeline"] = reranked
    curves = {
        name: recall_curve(r, q.relevant, [k for k in CURVE_KS if k <= r.shape[1]])
        for name, r in lists.items()
    }
    for m in metrics.values():
        m["n_users"] = float(len(q.uidx))
    extra = {
        "user_feeds": user_feeds,
        "queries": q,
        "feature_builder": p.fb,
        "candidates": cands,
        "valid": valid,
        "candidate_ease": ease,
        "ease_scores": ease_full,
    }
    return metrics, curves, extra


def candidate_recall_rows(rows: list[np.ndarray], relevant: list[set[int]]) -> float:
    """Mean over users of the share of their relevant items among their ``rows`` of items."""
    return float(np.mean([len(set(r.tolist()) & rel) / len(rel) for r, rel in
                          zip(rows, relevant, strict=True)]))  # fmt: skip


def stage_attribution(
    cands: np.ndarray,
    retrieved: np.ndarray,
    valid: np.ndarray,
    q: Queries,
    ranked: np.ndarray,
    reranked: np.ndarray,
) -> dict[str, float]:
    """Where the served pipeline loses relevant items, stage by stage: the sources' merged
    candidates (``retrieved``), what the seen filter keeps (``valid``), then the ranked and the
    re-ranked lists (Recall@10/@50, NDCG@10)."""
    out: dict[str, float] = {}
    for name, mask in (("retrieval", retrieved), ("filtered", valid)):
        rows = [c[m] for c, m in zip(cands, mask, strict=True)]
        out[f"stage_{name}_items"] = float(mask.sum(axis=1).mean())
        out[f"stage_{name}_recall"] = candidate_recall_rows(rows, q.relevant)
    for name, lst in (("ranked", ranked), ("reranked", reranked)):
        m = topk_metrics(lst[:, :10], q.relevant, (10,))
        out[f"stage_{name}_recall@10"] = m["recall@10"]
        out[f"stage_{name}_ndcg@10"] = m["ndcg@10"]
        out[f"stage_{name}_recall@50"] = recall_curve(lst, q.relevant, (50,))[50]
    return out


def run_protocol(
    data: MovieLens, split: Split, cfg: PipelineConfig, on_step: Callable[[int], None] | None = None
) -> ProtocolResult:
    """Fit two-tower, ranker and baselines on ``split.train``; evaluate all on ``split.val``
    (``val_`` metrics: where hyperparameters are chosen) and on ``split.test``."""
    cfg = replace(
        cfg, retrieval=replace(cfg.retrieval, user_time="event" if split.temporal else "last")
    )
    fb = FeatureBuilder(data, split.train, FeatureConfig(hist_len=cfg.hist_len))
    val_q = _queries(
        split, split.val, split.train, split.train, fb, split.val_time, cfg.max_eval_users, cfg.seed
    )
    train_m = _known_matrix(split.train, fb)
    val = Period(val_q, fb, train_m, _known_matrix(recent(split.train, cfg.ease_history), fb))
    baselines = fit_baselines(train_m, val, cfg)
    tt, ranker, ranker_summary = train_stack(
        data, split, fb, val_q, cfg, on_step, float(baselines["ease"].lam)
    )
    item_emb = item_embeddings(tt, fb)

    # At test time the events before the test period (train + val) are known inputs; RecBole's
    # protocol instead feeds train only and masks train + val items.
    feature_log = pd.concat([split.train, split.val]) if split.temporal else split.train
    seen_log = pd.concat([split.train, split.val])
    fb_test = FeatureBuilder(data, feature_log, fb.cfg)
    q = _queries(
        split,
        split.test,
        feature_log,
        seen_log,
        fb_test,
        split.test_time,
        cfg.max_eval_users,
        cfg.seed,
    )
    val_metrics, _, _ = evaluate_period(val, baselines, tt, ranker, item_emb, cfg)
    window = _known_matrix(recent(feature_log, cfg.ease_history), fb)
    test = Period(q, fb_test, _known_matrix(feature_log, fb), window)
    metrics, curves, extra = evaluate_period(test, baselines, tt, ranker, item_emb, cfg)
    for name, m in metrics.items():
        m.update({f"val_{k}": v for k, v in val_metrics[name].items()})
    metrics["ease"]["lambda"] = float(baselines["ease"].lam)
    extra["item_item"] = sp.csr_matrix(baselines["ease_sparse"].weights)  # served = evaluated
    extra["item_item_meta"] = {
        "model": "ease",
        "lambda": float(baselines["ease"].lam),
        "top_n": cfg.item_item_top_n,
    }
    extra["known"] = test.window  # the served EASE scores from the stored window
    extra["ranker_training"] = ranker_summary
    return ProtocolResult(metrics, curves, tt, ranker, fb, item_emb, extra)
