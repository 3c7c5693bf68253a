"""Multi-task ranker: training examples from a hold-out period, training, and batch scoring.

The ranker learns from events the retrieval model did not fit (see ``RankerHoldout``): for each
user of the hold-out period we ask that retrieval model for candidates exactly as the served
pipeline does (query at the period's start, seen items removed), and label each candidate by what
the user did in the period. Negatives are the retrieval results the user did not take (hard)
plus uniform random items, never the user's own validation or test items (``not_negative``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.encoders import cross_columns
from training.config import RankerConfig
from training.evaluation.evaluate import Queries, ease_matrix, merged_candidates
from training.features.builder import FeatureBuilder
from training.models.ranker import RANKER_INPUTS, MMoERanker
from training.models.two_tower import USER_INPUTS, TwoTower
from training.retrieval import item_embeddings, user_embeddings

log = logging.getLogger(__name__)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@dataclass
class RankerExamples:
    """Labelled (query, item) rows with the ranker's inputs; user-side inputs once per query."""

    user: dict[str, np.ndarray]  # user-tower inputs, [n_queries, ...]
    uidx: np.ndarray  # [n_queries] user index of each query
    now: np.ndarray  # [n_queries] query times
    query: np.ndarray  # [R] row → query
    items: np.ndarray  # [R] item indices
    item: dict[str, np.ndarray]  # [R, ...] item-side inputs (incl. cross, ease_score) at query time
    y_interact: np.ndarray  # [R] 1 = the user interacted with the item in the hold-out period
    y_like: np.ndarray  # [R] 1 = ... and rated it >= like threshold
    weight: np.ndarray  # [R] interact-head weight: graded by rating for positives
    sim: np.ndarray  # [R] retrieval similarity (the ranker's frozen two-tower computes the same)

    def __len__(self) -> int:
        return len(self.items)


def concat_examples(parts: list[RankerExamples]) -> RankerExamples:
    """One example set from several (e.g. one per query time); queries are renumbered."""
    offsets = np.cumsum([0] + [len(p.now) for p in parts[:-1]])

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    return RankerExamples(
        user={k: np.concatenate([p.user[k] for p in parts]) for k in parts[0].user},
        uidx=cat("uidx"),
        now=cat("now"),
        query=np.concatenate([p.query + o for p, o in zip(parts, offsets, strict=True)]),
        items=cat("items"),
        item={k: np.concatenate([p.item[k] for p in parts]) for k in parts[0].item},
        y_interact=cat("y_interact"),
        y_like=cat("y_like"),
        weight=cat("weight"),
        sim=cat("sim"),
    )


def example_rows(
    candidates: np.ndarray | list[np.ndarray],
    q: Queries,
    n_items: int,
    n_random: int,
    rng: np.random.Generator,
    not_negative: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(query, item) rows: every retrieved candidate and ``n_random`` random items per query,
    never an item of the query's seen set, never the same item twice for one query, and never
    an item of ``not_negative`` (queries × items) unless it is one of the query's positives.

    Hold-out positives the retrieval missed are left out on purpose: the served ranker only
    ever orders retrieved candidates, and those positives (low similarity by construction) teach
    it to distrust the similarity.
    """
    rows_q: list[np.ndarray] = []
    rows_i: list[np.ndarray] = []
    for r, cands in enumerate(candidates):
        seen = _row(q.seen, r)
        if not_negative is not None:
            banned = np.setdiff1d(_row(not_negative, r), np.fromiter(q.relevant[r], np.int64))
            cands = cands[~np.isin(cands, banned)]
            seen = np.concatenate([seen, banned])
        taken = np.concatenate([cands, seen])
        rand = rng.choice(n_items, min(n_items, n_random + len(taken)), replace=False)
        items = np.concatenate([cands, rand[~np.isin(rand, taken)][:n_random]])
        rows_q.append(np.full(len(items), r, dtype=np.int64))
        rows_i.append(items)
    return np.concatenate(rows_q), np.concatenate(rows_i)


def _row(m: sp.csr_matrix, r: int) -> np.ndarray:
    """Column indices of row ``r``."""
    return np.asarray(m.indices[m.indptr[r] : m.indptr[r + 1]], dtype=np.int64)


def build_examples(
    model: TwoTower,
    fb: FeatureBuilder,
    q: Queries,
    ratings: dict[tuple[int, int], float],
    n_candidates: int,
    n_random: int,
    rng: np.random.Generator,
    not_negative: sp.csr_matrix | None = None,
    item_item: sp.csr_matrix | None = None,
    n_ease: int = 0,
    history: sp.csr_matrix | None = None,
) -> RankerExamples:
    """Label the candidates of each query of ``q`` (``model``'s top ``n_candidates`` and the
    EASE source's top ``n_ease`` from ``item_item``; relevant = the query's hold-out items, with
    their ``ratings``); every input from ``fb`` at the query's time, the EASE scores from the
    query's ``history`` (queries × items; default its seen items). Items of ``not_negative``
    (queries × items) are left out unless relevant."""
    user = fb.user_inputs(q.uidx, q.now)
    u = user_embeddings(model, user)
    v = item_embeddings(model, fb)
    history = q.seen if history is None else history
    ease = ease_matrix(history, _or_empty(item_item, len(fb.item_ids)))
    cands, _, valid = merged_candidates(u @ v.T, ease, history, q.seen, n_candidates, n_ease)
    found = [c[ok] for c, ok in zip(cands, valid, strict=True)]
    query, items = example_rows(found, q, len(fb.item_ids), n_random, rng, not_negative)
    pos = np.array([i in q.relevant[r] for r, i in zip(query, items, strict=True)])
    rating = np.array(
        [
            ratings.get((int(q.uidx[r]), int(i)), 0.0) if p else 0.0
            for r, i, p in zip(query, items, pos, strict=True)
        ]
    )
    item = fb.ranker_item_inputs(items, q.now[query])
    item["cross"] = cross_columns(user["user_genre_affinity"][query], item["item_genres"])
    item["ease_score"] = ease[query, items]
    return RankerExamples(
        user=user,
        uidx=q.uidx,
        now=q.now,
        query=query,
        items=items,
        item=item,
        y_interact=pos.astype(np.float32),
        y_like=(pos & (rating >= fb.cfg.like_threshold)).astype(np.float32),
        weight=np.where(pos, 0.5 + rating / 5.0, 1.0).astype(np.float32),
        sim=np.einsum("rd,rd->r", u[query], v[items]).astype(np.float32),
    )


def _or_empty(weights: sp.csr_matrix | None, n_items: int) -> sp.csr_matrix:
    """The item-item weights, or all-zero ones (no EASE: every EASE score is 0)."""
    return weights if weights is not None else sp.csr_matrix((n_items, n_items), dtype=np.float32)


def _loss(logit: torch.Tensor, y: torch.Tensor, w: torch.Tensor, gamma: float) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logit, y, reduction="none")
    if gamma > 0:  # focal loss: down-weight easy examples
        p_t = torch.exp(-bce)
        bce = (1 - p_t) ** gamma * bce
    return (bce * w).sum() / w.sum()


def train_ranker(
    ex: RankerExamples,
    retrieval: TwoTower,
    temperature: float,
    cfg: RankerConfig,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    validate: Callable[[MMoERanker], float] | None = None,
    feature_cfg: FeatureConfig = DEFAULT_CONFIG,
    ease_scale: float = 0.0,
) -> tuple[MMoERanker, dict[str, Any]]:
    """Fit the ranker on hold-out examples made by ``retrieval`` (which it carries, frozen, and
    which recomputes ``ex.sim`` from the ranker's inputs).

    With ``validate`` (higher is better) the ranker is scored before training and
    ``cfg.evals_per_epoch`` times per epoch, and the best weights are kept: the untrained ranker
    orders candidates by the blend sim / temperature + ``ease_scale`` · EASE score (the weight
    chosen on validation beforehand), so the kept one is never worse on validation than it.
    Returns the ranker and a summary of its training (rows, positives, kept checkpoint).
    """
    rng = np.random.default_rng(seed + 1)
    torch.manual_seed(seed + 1)
    user_t = {k: _t(ex.user[k]) for k in USER_INPUTS}
    item_t = {k: _t(v) for k, v in ex.item.items()}
    sim_t = _t(ex.sim)
    model = MMoERanker(
        feature_cfg,
        retrieval,
        temperature,
        like_weight=cfg.like_weight,
        field_dropout=cfg.field_dropout,
    )
    with torch.no_grad():
        model.ease_scale.fill_(ease_scale)
    _init_bias(model, ex, temperature, ease_scale)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    balance = query_balance(ex)
    yi, yl = _t(ex.y_interact), _t(ex.y_like)
    wi, wl = _t(ex.weight * balance), _t(balance)
    n_batches = (len(ex) + cfg.batch_size - 1) // cfg.batch_size
    checkpoints = set(np.linspace(0, n_batches, cfg.evals_per_epoch + 1)[1:].round().astype(int))
    best = _Best(model, validate)
    for epoch in range(cfg.epochs):
        model.train()
        perm = rng.permutation(len(ex))
        total = 0.0
        for i, s in enumerate(range(0, len(perm), cfg.batch_size), start=1):
            rows = perm[s : s + cfg.batch_size]
            # Each distinct user of the batch gets its fields computed once.
            queries, user_row = np.unique(ex.query[rows], return_inverse=True)
            b = _t(rows)
            feeds = {k: v[_t(queries)] for k, v in user_t.items()}
            feeds.update({k: v[b] for k, v in item_t.items()})
            z = model.head_logits(feeds, sim_t[b], user_row=_t(user_row))
            loss = _loss(z[:, 0], yi[b], wi[b], cfg.focal_gamma) + _loss(
                z[:, 1], yl[b], wl[b], cfg.focal_gamma
            )
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
            total += float(loss.detach())
            if on_step:
                on_step(1)
            if i in checkpoints:
                best.offer(model, f"{epoch + i / n_batches:.2f}")
        log.info(
            "ranker epoch %d/%d loss %.4f (%d rows, %d positive)",
            epoch + 1,
            cfg.epochs,
            total / max(n_batches, 1),
            len(ex),
            int(ex.y_interact.sum()),
        )
    best.restore(model)
    model.eval()
    summary = {
        "rows": len(ex),
        "positives": int(ex.y_interact.sum()),
        "queries": len(ex.now),
        "kept_epoch": best.at,
        "val_ndcg@10": best.score,
        "val_ndcg@10_retrieval_order": best.first,  # the blend, before training
        "ease_scale_init": ease_scale,
    }
    return model, summary


def query_balance(ex: RankerExamples) -> np.ndarray:
    """[R] loss weight that gives every query the same total positive weight (a heavy user
    with 60 hold-out items would otherwise teach the ranker 20 times more than a light one,
    while the evaluation averages over users)."""
    n_pos = np.bincount(ex.query, weights=ex.y_interact, minlength=len(ex.now))
    mean = n_pos[n_pos > 0].mean() if (n_pos > 0).any() else 1.0
    return np.where(ex.y_interact > 0, mean / np.maximum(n_pos[ex.query], 1.0), 1.0).astype(
        np.float32
    )


def _init_bias(
    model: MMoERanker, ex: RankerExamples, temperature: float, ease_scale: float = 0.0
) -> None:
    """Each head starts at its base rate on the examples, ordered by the retrieval blend."""
    mean_logit = float(np.mean(ex.sim)) / temperature
    mean_logit += ease_scale * float(np.mean(ex.item["ease_score"]))
    with torch.no_grad():
        for h, y in enumerate((ex.y_interact, ex.y_like)):
            rate = float(np.clip(y.mean(), 1e-4, 1 - 1e-4))
            model.fm_bias[h] = float(np.log(rate / (1 - rate))) - mean_logit


class _Best:
    """Keeps the weights with the best validation score (no-op without a validator)."""

    def __init__(self, model: MMoERanker, validate: Callable[[MMoERanker], float] | None):
        self.validate = validate
        self.score, self.at = -np.inf, "final (not validated)"
        self.state: dict[str, torch.Tensor] | None = None
        self.offer(model, "0 (retrieval order)")
        self.first = self.score

    def offer(self, model: MMoERanker, at: str) -> None:
        """Validate ``model`` now; remember its weights if they are the best so far."""
        if self.validate is None:
            return
        model.eval()
        score = self.validate(model)
        model.train()
        log.info("ranker at epoch %s: val %.4f", at, score)
        if score > self.score:
            self.score, self.at = score, at
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: MMoERanker) -> None:
        """Load the best weights seen (if any were validated)."""
        if self.state is not None:
            model.load_state_dict(self.state)
            log.info("ranker: kept the weights of epoch %s (val %.4f)", self.at, self.score)


def ranker_steps(n_queries: int, n_candidates: int, cfg: RankerConfig) -> int:
    """Approximate optimizer steps (for the progress bar): missed positives are not counted."""
    rows = n_queries * (n_candidates + cfg.n_random_negatives)
    return cfg.epochs * ((rows + cfg.batch_size - 1) // cfg.batch_size)


@torch.no_grad()
def score_candidates(
    model: MMoERanker,
    fb: FeatureBuilder,
    user_feeds: dict[str, np.ndarray],
    candidates: np.ndarray,
    now: np.ndarray,
    ease: np.ndarray | None = None,
    chunk_users: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_interact, p_like, score), each [n_users, K], for each user's candidate items, whose
    EASE scores are ``ease`` [n_users, K] (None: 0).

    Same function as ``model.forward`` (the exported graph), but each user and item embedding of
    the frozen two-tower is computed once instead of once per (user, item) row.
    """
    n, k = candidates.shape
    u = user_embeddings(model.retrieval, user_feeds)
    v = item_embeddings(model.retrieval, fb)
    outs: list[list[np.ndarray]] = [[], [], []]
    for s in range(0, n, chunk_users):
        users = np.arange(s, min(s + chunk_users, n))
        rows = np.repeat(users, k)
        items = candidates[users].reshape(-1)
        feeds = {key: user_feeds[key][users] for key in USER_INPUTS}
        feeds.update(fb.ranker_item_inputs(items, now[rows]))
        feeds["cross"] = cross_columns(
            user_feeds["user_genre_affinity"][rows], feeds["item_genres"]
        )
        feeds["ease_score"] = (
            np.zeros(len(rows), np.float32) if ease is None else ease[users].reshape(-1)
        ).astype(np.float32)
        t = {key: _t(feeds[key]) for key in RANKER_INPUTS}
        sim = _t(np.einsum("rd,rd->r", u[rows], v[items]))
        res = model.outputs(model.head_logits(t, sim, user_row=_t(rows - s)))
        for o, r in zip(outs, res, strict=True):
            o.append(r.numpy().reshape(-1, k))
    return tuple(np.concatenate(o) for o in outs)  # type: ignore[return-value]


def rating_lookup(
    events: pd.DataFrame, user_index: dict[str, int], item_index: dict[str, int]
) -> dict[tuple[int, int], float]:
    """(user index, item index) → rating of ``events``."""
    u = events["user_id"].map(user_index).to_numpy(np.int64)
    i = events["item_id"].map(item_index).to_numpy(np.int64)
    r = events["rating"].to_numpy(np.float64)
    return {(int(a), int(b)): float(c) for a, b, c in zip(u, i, r, strict=True)}
