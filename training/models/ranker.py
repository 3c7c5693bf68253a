"""Multi-task ranker: field embeddings → FM interactions + MMoE experts → interact/like heads.

The ranker carries a frozen copy of the retrieval two-tower and computes the user·item cosine
similarity inside its own graph from the inputs it already receives, so serving feeds it exactly
the ONNX contract of docs/training.md and nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from shared.features.config import FeatureConfig
from shared.features.item import N_GENRES
from training.models.two_tower import (
    ITEM_INPUTS,
    USER_INPUTS,
    TwoTower,
    _embedding,
    pooled_history,
)

RANKER_INPUTS = USER_INPUTS + ITEM_INPUTS + ("item_dense", "cross", "ease_score")
HEADS = ("p_interact", "p_like")


class MMoERanker(nn.Module):
    """MMoE over field embeddings with an FM bi-interaction; user inputs broadcast from batch 1.

    Besides the 14 feature fields, each head sees the frozen two-tower similarity and the EASE
    score of the candidate (``ease_score``: the served item-item weights summed over the user's
    history): each as a field, as a raw input of the experts, and as a direct logit term
    ``sim_scale[h] · sim / temperature + ease_scale[h] · ease_score`` (``sim_scale`` starts at 1,
    ``ease_scale`` at the blend weight chosen on validation, so an untrained ranker orders
    candidates by that blend of the two retrieval scores).
    """

    def __init__(
        self, cfg: FeatureConfig, retrieval: TwoTower, temperature: float = 0.07, k: int = 16,
        n_experts: int = 3, expert_dim: int = 64, like_weight: float = 1.0, field_dropout: float = 0.0,
    ):
        super().__init__()
        self.retrieval = frozen_copy(retrieval)
        self.temperature = temperature
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
                "sim": nn.Linear(1, k),
                "ease": nn.Linear(1, k),
            }
        )
        # user id, profile×4, hist, 3 user dense; item id, 4 item dense; similarity, EASE
        self.n_fields = 1 + 4 + 1 + 3 + 1 + 4 + 1 + 1
        d_in = self.n_fields * k + k + 2 + 6 + 2  # fields + FM vector + raw cross, dense, sim, EASE
        self.field_dropout = nn.Dropout(field_dropout)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, 128), nn.ReLU(), nn.Linear(128, expert_dim), nn.ReLU())
            for _ in range(n_experts)
        )
        self.gates = nn.ModuleList(nn.Linear(d_in, n_experts) for _ in HEADS)
        self.towers = nn.ModuleList(_head_tower(expert_dim) for _ in HEADS)
        self.fm_bias = nn.Parameter(torch.zeros(len(HEADS)))
        self.fm_weight = nn.Parameter(torch.zeros(len(HEADS)))
        self.sim_scale = nn.Parameter(torch.ones(len(HEADS)))
        self.ease_scale = nn.Parameter(torch.zeros(len(HEADS)))
        self.like_weight = like_weight

    def similarity(self, feeds: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[N] cosine similarity of the frozen towers' user (batch 1 or N) and item embeddings."""
        u = self.retrieval.user_tower(*(feeds[k] for k in USER_INPUTS))
        v = self.retrieval.item_tower(*(feeds[k] for k in ITEM_INPUTS))
        sim: torch.Tensor = (u.expand(v.shape[0], -1) * v).sum(dim=1)
        return sim

    def user_fields(self, feeds: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """[U, 9, k] user-side field embeddings."""
        d = self.dense
        history = pooled_history(self.item_id, feeds["hist_item_hash"], fast=self.training)
        return torch.cat(
            [
                self.user_id(feeds["user_id_hash"]).sum(dim=1, keepdim=True),
                self.profile(feeds["user_profile"]),
                history.unsqueeze(1),
                d["aff"](feeds["user_genre_affinity"]).unsqueeze(1),
                d["udense"](feeds["user_dense"]).unsqueeze(1),
                d["time"](feeds["time_cyc"]).unsqueeze(1),
            ],
            dim=1,
        )

    def item_fields(self, feeds: Mapping[str, torch.Tensor], s: torch.Tensor) -> torch.Tensor:
        """[N, 7, k] item-side field embeddings; ``s`` [N, 1] is the similarity / temperature."""
        d = self.dense
        genres = feeds["item_genres"]
        return torch.stack(
            [
                self.item_id(feeds["item_id_hash"]).sum(dim=1),
                d["genres"](genres / genres.sum(dim=1, keepdim=True).clamp(min=1.0)),
                d["year"](feeds["item_year"]),
                d["idense"](feeds["item_dense"]),
                d["cross"](feeds["cross"]),
                d["sim"](s * 0.1),
                d["ease"](feeds["ease_score"].unsqueeze(1)),
            ],
            dim=1,
        )

    def head_logits(
        self,
        feeds: Mapping[str, torch.Tensor],
        sim: torch.Tensor,
        user_row: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pre-sigmoid head outputs [N, len(HEADS)] from the ranker inputs (by name) and the
        two-tower similarity ``sim`` [N].

        User inputs have batch U; ``user_row`` [N] says which user each item row belongs to
        (training: several users per batch, each user's fields computed once). Without it U is
        1 (serving: one user, broadcast) or N (one row per example).
        """
        uf = self.user_fields(feeds)
        n = feeds["item_id_hash"].shape[0]
        uf = uf[user_row] if user_row is not None else uf.expand(n, -1, -1)
        s = (sim / self.temperature).unsqueeze(1)
        fields = self.field_dropout(torch.cat([uf, self.item_fields(feeds, s)], dim=1))  # [N, F, k]
        sum_f = fields.sum(dim=1)
        fm_vec = 0.5 * (sum_f * sum_f - (fields * fields).sum(dim=1))  # FM bi-interaction pooling
        ease = feeds["ease_score"]
        raw = [feeds["cross"], feeds["item_dense"], s * 0.1, ease.unsqueeze(1)]
        x = torch.cat([fields.flatten(1), fm_vec, *raw], 1)
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # [N, E, D]
        fm = fm_vec.sum(dim=1)
        logits = []
        for h in range(len(HEADS)):
            w = torch.softmax(self.gates[h](x), dim=1).unsqueeze(-1)
            tower = self.towers[h]((experts * w).sum(dim=1)).squeeze(-1)
            direct = self.sim_scale[h] * s.squeeze(1) + self.ease_scale[h] * ease
            logits.append(tower + self.fm_weight[h] * fm + self.fm_bias[h] + direct)
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
        ease_score: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p_interact, p_like, score) with score = p_interact + like_weight · p_like.

        Positional, in ``RANKER_INPUTS`` order: the ONNX export names the inputs after them.
        """
        args = (user_id_hash, user_profile, hist_item_hash, user_genre_affinity, user_dense,
                time_cyc, item_id_hash, item_genres, item_year, item_dense, cross,
                ease_score)  # fmt: skip
        feeds = dict(zip(RANKER_INPUTS, args, strict=True))
        return self.outputs(self.head_logits(feeds, self.similarity(feeds)))

    def outputs(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Head logits [N, 2] → (p_interact, p_like, blended score)."""
        p_interact = torch.sigmoid(logits[:, 0])
        p_like = torch.sigmoid(logits[:, 1])
        return p_interact, p_like, p_interact + self.like_weight * p_like


def _head_tower(expert_dim: int) -> nn.Sequential:
    """Expert mix → logit; the output layer starts at zero, so an untrained ranker's logits are a
    function of the similarity alone (see ``MMoERanker.head_logits``)."""
    out = nn.Linear(32, 1)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(nn.Linear(expert_dim, 32), nn.ReLU(), out)


def frozen_copy(model: TwoTower) -> TwoTower:
    """A detached, gradient-free copy of the two-tower in eval mode."""
    twin = copy.deepcopy(model).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin
