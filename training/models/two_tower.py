"""Two-tower retrieval model: hashed id embeddings plus features in both towers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shared.features.config import FeatureConfig
from shared.features.item import N_GENRES

USER_INPUTS = ("user_id_hash", "user_profile", "hist_item_hash", "user_genre_affinity",
               "user_dense", "time_cyc")
ITEM_INPUTS = ("item_id_hash", "item_genres", "item_year")


def _embedding(n: int, dim: int, std: float) -> nn.Embedding:
    emb = nn.Embedding(n, dim, padding_idx=0)
    nn.init.normal_(emb.weight, std=std)
    with torch.no_grad():
        emb.weight[0].zero_()
    return emb


def pooled_history(emb: nn.Embedding, hist: torch.Tensor, fast: bool = False) -> torch.Tensor:
    """Mean of the (hash-summed) embeddings of non-padding history entries, [B, d].

    ``fast`` computes the same with ``embedding_bag`` (no [B, L, 2, d] intermediate: training
    steps run about twice as fast); the default gather form is the one exported to ONNX.
    """
    mask = (hist[:, :, 0] > 0).to(emb.weight.dtype)  # [B, L]
    count = mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    if fast:
        b, length, n_hash = hist.shape
        w = (mask / count).unsqueeze(-1).expand(b, length, n_hash).reshape(b, length * n_hash)
        return F.embedding_bag(hist.reshape(b, length * n_hash), emb.weight,
                               per_sample_weights=w, mode="sum", padding_idx=0)
    e = emb(hist).sum(dim=2)  # [B, L, d]
    pooled: torch.Tensor = (e * mask.unsqueeze(-1)).sum(dim=1) / count
    return pooled


class ItemTower(nn.Module):
    """Item id embedding + a content MLP (genres, year), L2-normalised."""

    def __init__(self, cfg: FeatureConfig, dim: int = 64, hidden: int = 128):
        super().__init__()
        self.id_emb = _embedding(cfg.item_id_buckets, dim, 0.05)
        self.content = nn.Sequential(nn.Linear(N_GENRES + 2, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(
        self, item_id_hash: torch.Tensor, item_genres: torch.Tensor, item_year: torch.Tensor
    ) -> torch.Tensor:
        e = self.id_emb(item_id_hash).sum(dim=1)
        x = e + self.content(torch.cat([item_genres, item_year], dim=1))
        return F.normalize(x, dim=-1)


class UserTower(nn.Module):
    """User id, profile, pooled history (item id table shared with the item tower), context."""

    def __init__(self, cfg: FeatureConfig, item_id_emb: nn.Embedding, dim: int = 64, hidden: int = 256):
        super().__init__()
        self.id_emb = _embedding(cfg.user_id_buckets, dim, 0.05)
        self.profile_emb = _embedding(cfg.profile_buckets, 16, 0.05)
        self.item_id_emb = item_id_emb
        n_in = dim + 4 * 16 + dim + N_GENRES + 3 + 4
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(
        self,
        user_id_hash: torch.Tensor,
        user_profile: torch.Tensor,
        hist_item_hash: torch.Tensor,
        user_genre_affinity: torch.Tensor,
        user_dense: torch.Tensor,
        time_cyc: torch.Tensor,
    ) -> torch.Tensor:
        u = self.id_emb(user_id_hash).sum(dim=1)
        p = self.profile_emb(user_profile).flatten(1)
        h = pooled_history(self.item_id_emb, hist_item_hash, fast=self.training)
        x = torch.cat([u, p, h, user_genre_affinity, user_dense, time_cyc], dim=1)
        return F.normalize(self.mlp(x) + h + u, dim=-1)


class TwoTower(nn.Module):
    """Both towers; scores are cosine similarities. With ``separate_history`` the user tower
    pools the history over an item table of its own (else the item tower's id table)."""

    def __init__(self, cfg: FeatureConfig, dim: int = 64, separate_history: bool = False):
        super().__init__()
        self.item_tower = ItemTower(cfg, dim)
        history = _embedding(cfg.item_id_buckets, dim, 0.05) if separate_history else None
        self.user_tower = UserTower(cfg, history or self.item_tower.id_emb, dim)
        self.dim = dim
