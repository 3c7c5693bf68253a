"""Multi-task ranker: field embeddings → FM interactions + MMoE experts → interact/like heads."""

from __future__ import annotations

import torch
from torch import nn

from shared.features.config import FeatureConfig
from shared.features.item import N_GENRES
from training.models.two_tower import ITEM_INPUTS, USER_INPUTS, _embedding, pooled_history

RANKER_INPUTS = USER_INPUTS + ITEM_INPUTS + ("item_dense", "cross")
HEADS = ("p_interact", "p_like")


class MMoERanker(nn.Module):
    """MMoE over field embeddings with an FM bi-interaction; user inputs broadcast from batch 1."""

    def __init__(
        self, cfg: FeatureConfig, k: int = 16, n_experts: int = 3, expert_dim: int = 64,
        like_weight: float = 1.0,
    ):  # fmt: skip
        super().__init__()
        self.user_id = _embedding(cfg.user_id_buckets, k, 0.05)
        self.profile = _embedding(cfg.profile_buckets, k, 0.05)
        self.item_id = _embedding(cfg.item_id_buckets, k, 0.05)
        self.dense = nn.ModuleDict(
            {
                "aff": nn.Linear(N_GENRES, k),
                "udense": nn.Linear(3, k),
                "time": nn.Linear(4, k),
                "genres": nn.Linear(N_GENRES, k),
                "year": nn.Linear(2, k),
                "idense": nn.Linear(6, k),
                "cross": nn.Linear(2, k),
            }
        )
        self.n_fields = 1 + 4 + 1 + 3 + 1 + 4  # user id, profile×4, hist, 3 user dense; item id, 4 item dense
        d_in = self.n_fields * k + k + 2 + 6  # fields + FM vector + raw cross + raw item dense
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, 128), nn.ReLU(), nn.Linear(128, expert_dim), nn.ReLU())
            for _ in range(n_experts)
        )
        self.gates = nn.ModuleList(nn.Linear(d_in, n_experts) for _ in HEADS)
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(expert_dim, 32), nn.ReLU(), nn.Linear(32, 1)) for _ in HEADS
        )
        self.fm_bias = nn.Parameter(torch.zeros(len(HEADS)))
        self.like_weight = like_weight

    def head_logits(
        self,
        user_id_hash: torch.Tensor,
        user_profile: torch.Tensor,
        hist_item_hash: torch.Tensor,
        user_genre_affinity: torch.Tensor,
        user_dense: torch.Tensor,
        time_cyc: torch.Tensor,
        item_id_hash: torch.Tensor,
        item_genres: torch.Tensor,
        item_year: torch.Tensor,
        item_dense: torch.Tensor,
        cross: torch.Tensor,
    ) -> torch.Tensor:
        """Pre-sigmoid head outputs [N, len(HEADS)] (what the losses use)."""
        d = self.dense
        user_fields = torch.cat(
            [
                self.user_id(user_id_hash).sum(dim=1, keepdim=True),
                self.profile(user_profile),
                pooled_history(self.item_id, hist_item_hash).unsqueeze(1),
                d["aff"](user_genre_affinity).unsqueeze(1),
                d["udense"](user_dense).unsqueeze(1),
                d["time"](time_cyc).unsqueeze(1),
            ],
            dim=1,
        )
        n = item_id_hash.shape[0]
        # Serving sends the user once (batch 1); training sends one row per example.
        user_fields = user_fields.expand(n, -1, -1)
        gsum = item_genres.sum(dim=1, keepdim=True).clamp(min=1.0)
        item_fields = torch.stack(
            [
                self.item_id(item_id_hash).sum(dim=1),
                d["genres"](item_genres / gsum),
                d["year"](item_year),
                d["idense"](item_dense),
                d["cross"](cross),
            ],
            dim=1,
        )
        fields = torch.cat([user_fields, item_fields], dim=1)  # [N, F, k]
        s = fields.sum(dim=1)
        fm_vec = 0.5 * (s * s - (fields * fields).sum(dim=1))  # FM bi-interaction pooling
        x = torch.cat([fields.flatten(1), fm_vec, cross, item_dense], dim=1)
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # [N, E, D]
        fm = fm_vec.sum(dim=1)
        logits = []
        for h in range(len(HEADS)):
            w = torch.softmax(self.gates[h](x), dim=1).unsqueeze(-1)
            logits.append(self.towers[h]((experts * w).sum(dim=1)).squeeze(-1) + fm * 0.1 + self.fm_bias[h])
        return torch.stack(logits, dim=1)

    def forward(
        self,
        user_id_hash: torch.Tensor,
        user_profile: torch.Tensor,
        hist_item_hash: torch.Tensor,
        user_genre_affinity: torch.Tensor,
        user_dense: torch.Tensor,
        time_cyc: torch.Tensor,
        item_id_hash: torch.Tensor,
        item_genres: torch.Tensor,
        item_year: torch.Tensor,
        item_dense: torch.Tensor,
        cross: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p_interact, p_like, score) with score = p_interact + like_weight · p_like."""
        z = self.head_logits(
            user_id_hash, user_profile, hist_item_hash, user_genre_affinity, user_dense, time_cyc,
            item_id_hash, item_genres, item_year, item_dense, cross,
        )  # fmt: skip
        p_interact = torch.sigmoid(z[:, 0])
        p_like = torch.sigmoid(z[:, 1])
        return p_interact, p_like, p_interact + self.like_weight * p_like
