"""Two-tower training: sampled softmax over in-batch + uniform negatives with logQ correction."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from training.config import RetrievalConfig
from training.features.builder import FeatureBuilder
from training.models.two_tower import ITEM_INPUTS, USER_INPUTS, TwoTower

log = logging.getLogger(__name__)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def train_two_tower(
    fb: FeatureBuilder,
    train: pd.DataFrame,
    cfg: RetrievalConfig,
    seed: int,
    on_step: Callable[[], None] | None = None,
    validate: Callable[[TwoTower], float] | None = None,
) -> TwoTower:
    """Fit a TwoTower on ``train`` events; each example's user features are point-in-time.

    With ``validate`` (higher is better, e.g. NDCG@10 on the validation split) the weights of the
    best epoch are kept: the model overfits ML-100K after a handful of epochs.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if cfg.max_train_rows and len(train) > cfg.max_train_rows:
        train = train.iloc[np.sort(rng.choice(len(train), cfg.max_train_rows, replace=False))]
    uidx = train["user_id"].map(fb.user_index).to_numpy(np.int64)
    iidx = train["item_id"].map(fb.item_index).to_numpy(np.int64)
    users = fb.user_inputs(uidx, example_times(fb, train, cfg.user_time))
    items = fb.item_inputs(np.arange(len(fb.item_ids)))
    n_items = len(fb.item_ids)
    # Mixed negative sampling: expected count of item j among a step's negatives.
    p = np.bincount(iidx, minlength=n_items) / len(iidx)
    log_q = _t(np.log(cfg.batch_size * p + cfg.n_uniform_negatives / n_items).astype(np.float32))
    model = TwoTower(fb.cfg, cfg.dim)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    user_t = {k: _t(users[k]) for k in USER_INPUTS}
    item_t = {k: _t(items[k]) for k in ITEM_INPUTS}
    best_score, best_state = -np.inf, None
    model.train()
    for epoch in range(cfg.epochs):
        perm = rng.permutation(len(iidx))
        total, steps = 0.0, 0
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            if len(b) < 2:
                continue
            pos = iidx[b]
            neg = rng.integers(0, n_items, cfg.n_uniform_negatives)
            cand = np.concatenate([pos, neg])
            cand_t = _t(cand)
            feeds = {k: v[_t(b)] for k, v in user_t.items()}
            feeds["hist_item_hash"] = mask_target(
                feeds["hist_item_hash"], item_t["item_id_hash"][_t(pos)]
            )
            u = model.user_tower(**feeds)
            v = model.item_tower(**{k: t[cand_t] for k, t in item_t.items()})
            logits = u @ v.T / cfg.temperature - log_q[cand_t][None, :]
            # Accidental hits: the positive item appearing again as a "negative".
            hit = _t(pos[:, None] == cand[None, :])
            hit[torch.arange(len(b)), torch.arange(len(b))] = False
            logits = logits.masked_fill(hit, float("-inf"))
            loss = F.cross_entropy(logits, torch.arange(len(b)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
            steps += 1
            if on_step:
                on_step()
        msg = f"two-tower epoch {epoch + 1}/{cfg.epochs} loss {total / max(steps, 1):.4f}"
        if validate is not None:
            model.eval()
            score = validate(model)
            model.train()
            msg += f" val {score:.4f}"
            if score > best_score:
                best_score, best_state = score, copy.deepcopy(model.state_dict())
        log.info(msg)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model


def example_times(fb: FeatureBuilder, train: pd.DataFrame, mode: str) -> np.ndarray:
    """ "Now" of each training example: its own timestamp (point-in-time, temporal protocol) or
    one second after the user's last known event ("last": RecBole's shuffled protocol, where the
    held-out items are scattered over the user's whole timeline)."""
    ts = train["timestamp"].to_numpy(np.float64)
    if mode == "event":
        return ts
    last = train.groupby("user_id")["timestamp"].transform("max").to_numpy(np.float64)
    return last + 1.0


def mask_target(hist: torch.Tensor, target_hash: torch.Tensor) -> torch.Tensor:
    """Blank the target item out of the history so the model cannot just copy it."""
    same = (hist == target_hash[:, None, :]).all(dim=2, keepdim=True)
    return hist.masked_fill(same, 0)


def steps_per_run(n_rows: int, cfg: RetrievalConfig) -> int:
    """Optimizer steps a run will take (for the progress bar)."""
    n = min(n_rows, cfg.max_train_rows or n_rows)
    return cfg.epochs * ((n + cfg.batch_size - 1) // cfg.batch_size)


@torch.no_grad()
def item_embeddings(model: TwoTower, fb: FeatureBuilder) -> np.ndarray:
    """[n_items, dim] float32 L2-normalised embeddings of the whole catalogue."""
    feeds = fb.item_inputs(np.arange(len(fb.item_ids)))
    return model.item_tower(**{k: _t(feeds[k]) for k in ITEM_INPUTS}).numpy().astype(np.float32)


@torch.no_grad()
def user_embeddings(model: TwoTower, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """[n, dim] user embeddings from user-tower input arrays."""
    out = [
        model.user_tower(**{k: _t(feeds[k][s : s + 4096]) for k in USER_INPUTS}).numpy()
        for s in range(0, len(feeds["user_id_hash"]), 4096)
    ]
    return np.concatenate(out).astype(np.float32)
