"""Turn the production protocol's models into the on-disk bundle of docs/training.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shared.features.encoders import cross_columns
from shared.features.schema import build_schema
from shared.models.item_item import SparseItemItem
from training.config import PipelineConfig
from training.drift_reference import drift_reference
from training.export import (
    PARITY_TOL,
    Bundle,
    ExportError,
    ann_recall,
    build_hnsw,
    export_ranker,
    export_two_tower,
    finish_bundle,
    new_bundle,
    quantize_ranker,
)
from training.protocol import ProtocolResult
from training.retrieval import user_embeddings


def write_bundle(
    res: ProtocolResult, cfg: PipelineConfig, out: Path, manifest: dict[str, Any]
) -> tuple[Bundle, dict[str, float]]:
    """Export every part into a temporary bundle next to ``out`` (published by the caller);
    returns it with the ONNX parity and ANN recall figures. Raises ExportError on bad parity."""
    b = new_bundle(out)
    figures = _retrieval_parts(res, cfg, b)
    figures.update(_item_item_part(res, b))
    figures.update(_ranker_part(res, cfg, b))
    bad = {k: v for k, v in figures.items() if k.startswith("parity") and v > PARITY_TOL}
    if bad:
        raise ExportError(f"ONNX parity above {PARITY_TOL}: {bad}")
    finish_bundle(b, build_schema(res.fb.cfg, cfg.retrieval.dim), manifest | {"export": figures})
    return b, figures


def _retrieval_parts(res: ProtocolResult, cfg: PipelineConfig, b: Bundle) -> dict[str, float]:
    fb, user_feeds = res.fb, res.extra["user_feeds"]
    uf = {k: v[:16] for k, v in user_feeds.items()}
    itf = fb.item_inputs(np.arange(min(64, len(fb.item_ids))))
    figures = export_two_tower(res.two_tower, uf, itf, b.user_tower)
    (b.user_tower / "item_tower.onnx").rename(b.item_index / "item_tower.onnx")
    np.save(b.item_index / "item_embeddings.npy", res.item_emb.astype(np.float32))
    (b.item_index / "item_ids.json").write_text(json.dumps(fb.item_ids))
    index = b.item_index / "hnsw_index.bin"
    meta = build_hnsw(
        res.item_emb, cfg.hnsw_m, cfg.hnsw_ef_construction, cfg.hnsw_ef_search, index, cfg.seed
    )
    (b.item_index / "index_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    queries = user_embeddings(res.two_tower, user_feeds)[:200]
    k = min(100, len(res.item_emb))
    figures[f"ann_recall@{k}"] = ann_recall(index, res.item_emb, queries, k, cfg.hnsw_ef_search)
    return figures


def _item_item_part(res: ProtocolResult, b: Bundle) -> dict[str, float]:
    """item_index/item_item.npz (EASE's top weights per item); parity of the served top-50
    with the training-side scores of the same weights, for 16 evaluation users."""
    weights = res.extra["item_item"]
    SparseItemItem(weights.indptr, weights.indices, weights.data, res.extra["item_item_meta"]).save(
        b.item_index
    )
    served = SparseItemItem.load(b.item_index)
    assert served is not None
    known, worst = res.extra["known"], 0.0
    for u in res.extra["queries"].uidx[:16]:
        history = known[u].indices
        expected = np.asarray((known[u] @ weights).todense()).ravel()  # scipy, as in training
        expected[history] = -np.inf
        labels, scores = served.top(history.astype(np.int64), 50)
        best = np.sort(expected[expected > 0])[::-1][:50]  # the served list: positive scores
        worst = max(worst, float(np.max(np.abs(expected[labels] - scores), initial=0.0)))
        worst = max(worst, float(np.max(np.abs(best - scores), initial=0.0)))
    return {"parity_item_item": worst}


def _ranker_part(res: ProtocolResult, cfg: PipelineConfig, b: Bundle) -> dict[str, float]:
    fb = res.fb
    figures = export_ranker(res.ranker, _ranker_feeds(res, 0, np.arange(8)), b.ranker)
    figures.update(quantize_ranker(b.ranker, _agreement_batches(res, cfg)))
    meta = {
        "heads": ["p_interact", "p_like"],
        "score": "p_interact + like_weight * p_like",
        "like_weight": cfg.ranker.like_weight,
        "like_threshold": fb.cfg.like_threshold,
        "n_candidates": cfg.n_candidates,
        "ease_candidates": cfg.ease_candidates,
        "ease_score": "item_index/item_item.npz weights summed over the user's history (seen)",
        "mmr_lambda": cfg.mmr_lambda,
        "rerank_depth": cfg.rerank_depth,
        # The ranker carries a frozen copy of this bundle's two-tower (user·item similarity).
        "retrieval_similarity": "cosine of the bundle's user and item towers, inside ranker.onnx",
        "training": res.extra.get("ranker_training", {}),
    }
    (b.ranker / "ranker_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    drift_reference(res).save(b.ranker)  # docs/monitoring.md
    return figures


def _ranker_feeds(res: ProtocolResult, user: int, items: np.ndarray) -> dict[str, np.ndarray]:
    """Ranker inputs as served: one user (row ``user`` of the user feeds), a batch of items."""
    feeds = {k: v[user : user + 1] for k, v in res.extra["user_feeds"].items()}
    feeds.update(res.fb.ranker_item_inputs(items, float(res.extra["queries"].now[0])))
    feeds["cross"] = cross_columns(feeds["user_genre_affinity"], feeds["item_genres"])
    feeds["ease_score"] = res.extra["ease_scores"][user, items].astype(np.float32)
    return feeds


def _agreement_batches(res: ProtocolResult, cfg: PipelineConfig) -> list[dict[str, np.ndarray]]:
    """Ranker inputs for 20 users × up to ``n_candidates`` random items each, to compare the
    int8 ranker's top-10 with float32's."""
    n_items = len(res.fb.item_ids)
    n_users = len(next(iter(res.extra["user_feeds"].values())))
    rng = np.random.default_rng(cfg.seed)
    return [
        _ranker_feeds(res, u, rng.choice(n_items, min(cfg.n_candidates, n_items), replace=False))
        for u in rng.choice(n_users, min(20, n_users), replace=False)
    ]
