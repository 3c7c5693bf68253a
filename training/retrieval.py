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
    on_step: Callable[[int], None] | None = None,
    validate: Callable[[TwoTower], float] | None = None,
) -> TwoTower:
    """Fit a TwoTower on ``train`` events; each example's user features are point-in-time.

    With ``validate`` (higher is better, e.g. NDCG@10 on the validation split) the weights of the
    best epoch are kept, and training stops after ``cfg.patience`` epochs without a new best: the
    model overfits ML-100K after a handful of epochs.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if cfg.max_train_rows and len(train) > cfg.max_train_rows:
        train = train.iloc[np.sort(rng.choice(len(train), cfg.max_train_rows, replace=False))]
    iidx = train["item_id"].map(fb.item_index).to_numpy(np.int64)
    users = fb.user_inputs(
        train["user_id"].map(fb.user_index).to_numpy(np.int64), example_times(train, cfg.user_time)
    )
    user_t = {k: _t(users[k]) for k in USER_INPUTS}
    item_t = {k: _t(v) for k, v in fb.item_inputs(np.arange(len(fb.item_ids))).items()}
    log_q = _log_q(iidx, len(fb.item_ids), cfg)
    model = TwoTower(fb.cfg, cfg.dim, cfg.separate_history)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    ema = EmaWeights(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    n_batches = (len(iidx) + cfg.batch_size - 1) // cfg.batch_size
    best_score, best_state, best_epoch = -np.inf, None, 0
    for epoch in range(cfg.epochs):
        model.train()
        perm = rng.permutation(len(iidx))
        total = 0.0
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            feeds = {k: v[_t(b)] for k, v in user_t.items()}
            if cfg.full_softmax:
                loss = full_softmax_loss(model, feeds, item_t, iidx[b], cfg.temperature)
            else:
                neg = rng.integers(0, len(fb.item_ids), cfg.n_uniform_negatives)
                loss = softmax_loss(model, feeds, item_t, iidx[b], neg, log_q, cfg.temperature)
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
            if ema is not None:
                ema.update(model)
            total += float(loss.detach())
            if on_step:
                on_step(1)
        if ema is not None:
            ema.swap(model)  # evaluate (and keep, if best) the averaged weights
        msg = f"two-tower epoch {epoch + 1}/{cfg.epochs} loss {total / max(n_batches, 1):.4f}"
        if validate is not None:
            model.eval()
            score = validate(model)
            msg += f" val {score:.4f}"
            if score > best_score:
                best_score, best_state, best_epoch = score, copy.deepcopy(model.state_dict()), epoch
        log.info(msg)
        if ema is not None:
            ema.swap(model)  # back to the raw weights to train on
        if validate is not None and epoch - best_epoch >= cfg.patience:
            if on_step:  # the progress bar counted the epochs that will not run
                on_step((cfg.epochs - epoch - 1) * n_batches)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model


class EmaWeights:
    """Exponential moving average of a model's parameters (evaluated and kept instead of the raw
    weights: the high learning rate that regularises training makes single epochs noisy)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """shadow ← decay · shadow + (1 − decay) · current."""
        torch._foreach_lerp_(self.shadow, [p.detach() for p in model.parameters()], 1 - self.decay)

    @torch.no_grad()
    def swap(self, model: torch.nn.Module) -> None:
        """Exchange the model's weights and the averages (call twice to undo)."""
        for p, s in zip(model.parameters(), self.shadow, strict=True):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)


def _log_q(iidx: np.ndarray, n_items: int, cfg: RetrievalConfig) -> torch.Tensor:
    """log of the expected count of item j among one step's negatives (in-batch + uniform)."""
    p = np.bincount(iidx, minlength=n_items) / max(len(iidx), 1)
    return _t(np.log(cfg.batch_size * p + cfg.n_uniform_negatives / n_items).astype(np.float32))


def softmax_loss(
    model: TwoTower,
    user_feeds: dict[str, torch.Tensor],
    item_t: dict[str, torch.Tensor],
    pos: np.ndarray,
    neg: np.ndarray,
    log_q: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Sampled softmax of each user's positive against in-batch positives and uniform negatives,
    logQ-corrected, with accidental hits (the positive again among the negatives) masked."""
    cand = np.concatenate([pos, neg])
    cand_t = _t(cand)
    feeds = dict(user_feeds)
    feeds["hist_item_hash"] = mask_target(feeds["hist_item_hash"], item_t["item_id_hash"][_t(pos)])
    u = model.user_tower(**feeds)
    v = model.item_tower(**{k: t[cand_t] for k, t in item_t.items()})
    logits = u @ v.T / temperature - log_q[cand_t][None, :]
    hit = _t(pos[:, None] == cand[None, :])
    hit[torch.arange(len(pos)), torch.arange(len(pos))] = False
    logits = logits.masked_fill(hit, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(pos)))


def full_softmax_loss(
    model: TwoTower,
    user_feeds: dict[str, torch.Tensor],
    item_t: dict[str, torch.Tensor],
    pos: np.ndarray,
    temperature: float,
) -> torch.Tensor:
    """Softmax of each user's positive against the whole catalogue (1682 items: one item-tower
    pass per step costs about what the sampled one does, and needs no logQ correction)."""
    feeds = dict(user_feeds)
    pos_t = _t(pos)
    feeds["hist_item_hash"] = mask_target(feeds["hist_item_hash"], item_t["item_id_hash"][pos_t])
    u = model.user_tower(**feeds)
    v = model.item_tower(**item_t)
    return F.cross_entropy(u @ v.T / temperature, pos_t)


def example_times(train: pd.DataFrame, mode: str) -> np.ndarray:
    """ "Now" of each training example: its own timestamp (point-in-time, temporal protocol) or
    one second after the user's last known event ("last": RecBole's shuffled protocol, where the
    held-out items are scattered over the user's whole timeline)."""
    ts = np.asarray(train["timestamp"], dtype=np.float64)
    if mode == "event":
        return ts
    last = np.asarray(train.groupby("user_id")["timestamp"].transform("max"), dtype=np.float64)
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
    out = model.item_tower(**{k: _t(feeds[k]) for k in ITEM_INPUTS})
    return np.asarray(out.numpy(), dtype=np.float32)


@torch.no_grad()
def user_embeddings(model: TwoTower, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """[n, dim] user embeddings from user-tower input arrays."""
    out = [
        model.user_tower(**{k: _t(feeds[k][s : s + 4096]) for k in USER_INPUTS}).numpy()
        for s in range(0, len(feeds["user_id_hash"]), 4096)
    ]
    return np.concatenate(out).astype(np.float32)
