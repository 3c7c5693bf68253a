"""Multi-task ranker training (hard negatives from retrieval + random) and batch scoring."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from shared.features.encoders import cross_columns
from training.config import RankerConfig
from training.features.builder import FeatureBuilder
from training.models.ranker import RANKER_INPUTS, MMoERanker
from training.models.two_tower import USER_INPUTS
from training.retrieval import mask_target

log = logging.getLogger(__name__)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def sample_negatives(
    pos_user: np.ndarray,
    user_positives: dict[int, set[int]],
    hard_pool: np.ndarray,
    n_items: int,
    cfg: RankerConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(example index, item) of negatives: per positive, ``n_hard`` from the user's retrieval
    top list (``hard_pool[user]``) and ``n_random`` uniform, never one of the user's positives."""
    n = len(pos_user)
    k = cfg.n_hard_negatives + cfg.n_random_negatives
    hard = hard_pool[pos_user][
        np.arange(n)[:, None], rng.integers(0, hard_pool.shape[1], (n, cfg.n_hard_negatives))
    ]
    rand = rng.integers(0, n_items, (n, cfg.n_random_negatives))
    items = np.concatenate([hard, rand], axis=1).reshape(-1)
    ex = np.repeat(np.arange(n), k)
    keep = np.array(
        [
            it not in user_positives.get(int(u), ())
            for u, it in zip(pos_user[ex], items, strict=True)
        ]
    )
    return ex[keep], items[keep]


def _loss(logit: torch.Tensor, y: torch.Tensor, w: torch.Tensor, gamma: float) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logit, y, reduction="none")
    if gamma > 0:  # focal loss: down-weight easy examples
        p_t = torch.exp(-bce)
        bce = (1 - p_t) ** gamma * bce
    return (bce * w).sum() / w.sum()


def train_ranker(
    fb: FeatureBuilder,
    train: pd.DataFrame,
    example_now: np.ndarray,
    hard_pool: np.ndarray,
    cfg: RankerConfig,
    seed: int,
    on_step: Callable[[], None] | None = None,
) -> MMoERanker:
    """Fit the ranker; ``hard_pool`` [n_users, P] holds each user's top retrieved items."""
    rng = np.random.default_rng(seed + 1)
    torch.manual_seed(seed + 1)
    if cfg.max_train_rows and len(train) > cfg.max_train_rows:
        keep = np.sort(rng.choice(len(train), cfg.max_train_rows, replace=False))
        train, example_now = train.iloc[keep], example_now[keep]
    uidx = train["user_id"].map(fb.user_index).to_numpy(np.int64)
    iidx = train["item_id"].map(fb.item_index).to_numpy(np.int64)
    rating = train["rating"].to_numpy(np.float32)
    positives: dict[int, set[int]] = {}
    for u, i in zip(uidx, iidx, strict=True):
        positives.setdefault(int(u), set()).add(int(i))
    neg_ex, neg_items = sample_negatives(uidx, positives, hard_pool, len(fb.item_ids), cfg, rng)
    ex = np.concatenate([np.arange(len(uidx)), neg_ex])
    items = np.concatenate([iidx, neg_items])
    y_int = np.concatenate([np.ones(len(uidx)), np.zeros(len(neg_ex))]).astype(np.float32)
    y_like = np.concatenate([(rating >= fb.cfg.like_threshold), np.zeros(len(neg_ex))]).astype(
        np.float32
    )
    # Graded labels: a 5-star positive weighs more than a 1-star one in the interaction head.
    w_int = np.concatenate([0.5 + rating / 5.0, np.ones(len(neg_ex))]).astype(np.float32)
    users = fb.user_inputs(uidx, example_now)
    item_side = fb.ranker_item_inputs(items, example_now[ex])
    item_side["cross"] = cross_columns(users["user_genre_affinity"][ex], item_side["item_genres"])
    user_t = {k: _t(users[k]) for k in USER_INPUTS}
    item_t = {k: _t(item_side[k]) for k in item_side}
    model = MMoERanker(fb.cfg, like_weight=cfg.like_weight)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    yi, yl, wi = _t(y_int), _t(y_like), _t(w_int)
    ex_t = _t(ex)
    model.train()
    for epoch in range(cfg.epochs):
        perm = _t(rng.permutation(len(ex)))
        total, steps = 0.0, 0
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            feeds = {k: v[ex_t[b]] for k, v in user_t.items()}
            feeds.update({k: v[b] for k, v in item_t.items()})
            # Under the shuffled protocol the history can hold the example's own item: hide it,
            # or the ranker learns "in history = positive" (never true for a served candidate).
            feeds["hist_item_hash"] = mask_target(feeds["hist_item_hash"], feeds["item_id_hash"])
            z = model.head_logits(**feeds)
            loss = _loss(z[:, 0], yi[b], wi[b], cfg.focal_gamma) + _loss(
                z[:, 1], yl[b], torch.ones_like(yl[b]), cfg.focal_gamma
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
            steps += 1
            if on_step:
                on_step()
        log.info(
            "ranker epoch %d/%d loss %.4f (%d rows)",
            epoch + 1,
            cfg.epochs,
            total / max(steps, 1),
            len(ex),
        )
    model.eval()
    return model


def ranker_steps(n_rows: int, cfg: RankerConfig) -> int:
    """Approximate optimizer steps (for the progress bar)."""
    n = min(n_rows, cfg.max_train_rows or n_rows)
    per = n * (1 + cfg.n_hard_negatives + cfg.n_random_negatives)
    return cfg.epochs * ((per + cfg.batch_size - 1) // cfg.batch_size)


@torch.no_grad()
def score_candidates(
    model: MMoERanker,
    fb: FeatureBuilder,
    user_feeds: dict[str, np.ndarray],
    candidates: np.ndarray,
    now: np.ndarray,
    chunk_users: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_interact, p_like, score), each [n_users, K], for each user's candidate items."""
    n, k = candidates.shape
    outs: list[list[np.ndarray]] = [[], [], []]
    for s in range(0, n, chunk_users):
        rows = np.repeat(np.arange(s, min(s + chunk_users, n)), k)
        items = candidates[s : s + chunk_users].reshape(-1)
        feeds = {key: user_feeds[key][rows] for key in USER_INPUTS}
        feeds.update(fb.ranker_item_inputs(items, now[rows]))
        feeds["cross"] = cross_columns(feeds["user_genre_affinity"], feeds["item_genres"])
        res = model(**{key: _t(feeds[key]) for key in RANKER_INPUTS})
        for o, r in zip(outs, res, strict=True):
            o.append(r.numpy().reshape(-1, k))
    return tuple(np.concatenate(o) for o in outs)  # type: ignore[return-value]
