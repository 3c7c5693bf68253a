"""FactoredRanker: the trained MMoERanker rewritten for serving, same inputs, same outputs.

Serving scores one user against a few hundred candidates. The training graph broadcasts the
user's nine field embeddings to every candidate before the experts' first layer, and runs
seven small per-field layers and several reductions over ``[N, 16, k]`` tensors: in
onnxruntime that is about 340 nodes, and measured on 500 candidates (int8, one thread) 18% of
the run went to ReduceSum and 10% to Concat. This module computes exactly the same function
with the algebra rearranged:

- the user's share of every expert's first layer and of the gates is one product computed
  once per user (``[U, 9k] @ [9k, H]``), added to the candidates' share as a broadcast bias;
- the item fields other than the id embedding are linear in 31 raw inputs, so their share of
  the first layer folds into one ``[31, H]`` matrix, and all experts' first layers and both
  gates become one product ``[N, 63] @ [63, H]``;
- the FM bi-interaction keeps its per-field squares, summed by a matrix product instead of a
  ReduceSum, with the user's sums computed once.

Nothing here is trained: export builds it from the trained model and the ONNX parity check
compares its graph with the training module's outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from shared.features.item import N_GENRES
from training.models.ranker import HEADS, RANKER_INPUTS, MMoERanker
from training.models.two_tower import USER_INPUTS

# The item fields after the id embedding, in MMoERanker.item_fields order, with their raw
# widths: r = [genres share, year, item dense, cross, sim/T·0.1, ease].
_DENSE_FIELDS = (
    ("genres", N_GENRES), ("year", 2), ("idense", 6), ("cross", 2), ("sim", 1), ("ease", 1)
)  # fmt: skip
_START = dict(zip([f for f, _ in _DENSE_FIELDS],
                  [sum(n for _, n in _DENSE_FIELDS[:i]) for i in range(len(_DENSE_FIELDS))],
                  strict=True))  # fmt: skip
# MMoERanker's raw expert inputs [cross, item dense, sim/T·0.1, ease] as columns of r.
_RAW_COLUMNS = tuple(
    _START[f] + j for f in ("cross", "idense", "sim", "ease") for j in range(dict(_DENSE_FIELDS)[f])
)
N_USER_FIELDS = 9


class FactoredRanker(nn.Module):
    """The serving form of a trained ``MMoERanker`` (see the module docstring); ``forward``
    takes the ranker inputs in ``RANKER_INPUTS`` order, user inputs with batch 1 or N."""

    user_w: torch.Tensor  # [9k, H]: the user fields' share of every first layer
    item_w: torch.Tensor  # [k + 31 + k, H]: the id embedding's, the raw inputs', the FM's
    first_b: torch.Tensor
    dense_w: torch.Tensor  # [31, 6k] block diagonal: the six dense item fields
    dense_b: torch.Tensor
    dense_sum_w: torch.Tensor  # [31, k]: their sum, for the FM
    dense_sum_b: torch.Tensor
    field_sum: torch.Tensor  # [6k, k]: sums the six fields' squares

    def __init__(self, model: MMoERanker) -> None:
        super().__init__()
        model = model.eval()
        self.model = model  # user fields, id embeddings, towers and scalars are used as they are
        k = model.item_id.embedding_dim
        experts = [_linears(e) for e in model.experts]
        first = [lin[0] for lin in experts] + [_as_linear(g) for g in model.gates]
        a_w = torch.cat([lin.weight for lin in first], 0).detach()  # [H, 282]
        a_b = torch.cat([lin.bias for lin in first], 0).detach()
        n_u, n_i = N_USER_FIELDS * k, 7 * k
        a_user, a_id = a_w[:, :n_u], a_w[:, n_u : n_u + k]
        a_dense, a_fm = a_w[:, n_u + k : n_u + n_i], a_w[:, n_u + n_i : n_u + n_i + k]
        a_raw = a_w[:, n_u + n_i + k :]
        width = sum(n for _, n in _DENSE_FIELDS)
        dense_w = torch.zeros(width, len(_DENSE_FIELDS) * k)  # block diagonal: r → 6 fields
        dense_b = torch.zeros(len(_DENSE_FIELDS) * k)
        row = 0
        for f, (name, n) in enumerate(_DENSE_FIELDS):
            lin = _as_linear(model.dense[name])
            dense_w[row : row + n, f * k : (f + 1) * k] = lin.weight.detach().T
            dense_b[f * k : (f + 1) * k] = lin.bias.detach()
            row += n
        pick_raw = torch.zeros(width, len(_RAW_COLUMNS))
        for j, col in enumerate(_RAW_COLUMNS):
            pick_raw[col, j] = 1.0
        fold_r = dense_w @ a_dense.T + pick_raw @ a_raw.T  # [31, H]
        self.register_buffer("user_w", a_user.T.contiguous())  # [9k, H]
        self.register_buffer("item_w", torch.cat([a_id.T, fold_r, a_fm.T], 0).contiguous())
        self.register_buffer("first_b", a_b + dense_b @ a_dense.T)
        self.register_buffer("dense_w", dense_w)
        self.register_buffer("dense_b", dense_b)
        self.register_buffer("dense_sum_w", dense_w.view(width, len(_DENSE_FIELDS), k).sum(1))
        self.register_buffer("dense_sum_b", dense_b.view(len(_DENSE_FIELDS), k).sum(0))
        self.register_buffer("field_sum", torch.eye(k).repeat(len(_DENSE_FIELDS), 1))  # [6k, k]
        self.hidden = experts[0][0].out_features
        self.n_experts = len(experts)
        self.second = [lin[1] for lin in experts]  # each expert's second layer

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p_interact, p_like, score), as ``MMoERanker.forward``."""
        m = self.model
        feeds = dict(zip(RANKER_INPUTS, args, strict=True))
        item_hash = feeds["item_id_hash"]
        tower = m.retrieval.item_tower
        u = m.retrieval.user_tower(*(feeds[k] for k in USER_INPUTS))  # [U, d]
        content = tower.content(torch.cat([feeds["item_genres"], feeds["item_year"]], dim=1))
        x = _hash_sum(tower.id_emb, item_hash) + content
        # F.normalize, with the norm broadcast instead of expanded (an Expand node cost 50 µs)
        v = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=1e-12)  # [N, d]
        s = (v * u).sum(dim=1) / m.temperature  # broadcast, not expand: U is 1 or N
        ease = feeds["ease_score"]
        uf = m.user_fields(feeds)  # [U, 9, k]
        user_part = uf.flatten(1) @ self.user_w + self.first_b  # [U, H]
        id_e = _hash_sum(m.item_id, item_hash)  # [N, k]
        genres = feeds["item_genres"]
        r = torch.cat([genres / genres.sum(dim=1, keepdim=True).clamp(min=1.0),
                       feeds["item_year"], feeds["item_dense"], feeds["cross"],
                       (s * 0.1).unsqueeze(1), ease.unsqueeze(1)], 1)  # fmt: skip
        dense = r @ self.dense_w + self.dense_b  # [N, 6k]: the six dense item fields
        sum_f = uf.sum(dim=1) + id_e + r @ self.dense_sum_w + self.dense_sum_b
        squares = (uf * uf).sum(dim=1) + id_e * id_e + (dense * dense) @ self.field_sum
        fm_vec = 0.5 * (sum_f * sum_f - squares)
        z = torch.cat([id_e, r, fm_vec], 1)  # [N, 63]
        # One product per expert (and one for the gates), the user's share as Gemm's bias:
        # slicing one wide product copies it, and a separate Add costs as much as the product.
        d, n_exp = self.hidden, self.n_experts
        cols = [(j * d, (j + 1) * d) for j in range(n_exp)] + [(n_exp * d, self.item_w.shape[1])]
        parts = [torch.addmm(user_part[:, lo:hi], z, self.item_w[:, lo:hi]) for lo, hi in cols]
        experts = torch.stack(
            [torch.relu(lin(torch.relu(h))) for lin, h in zip(self.second, parts, strict=False)], 1
        )  # [N, E, D]
        gates = torch.softmax(parts[-1].view(-1, len(HEADS), n_exp), dim=2)  # [N, heads, E]
        mixes = gates @ experts  # [N, heads, D]
        fm = fm_vec.sum(dim=1)
        logits = []
        for i in range(len(HEADS)):
            head = m.towers[i](mixes[:, i]).squeeze(-1)
            direct = m.sim_scale[i] * s + m.ease_scale[i] * ease
            logits.append(head + m.fm_weight[i] * fm + m.fm_bias[i] + direct)
        return m.outputs(torch.stack(logits, dim=1))


def _as_linear(module: nn.Module) -> nn.Linear:
    if not isinstance(module, nn.Linear):
        raise TypeError(f"expected a Linear layer, got {type(module).__name__}")
    return module


def _linears(expert: nn.Module) -> list[nn.Linear]:
    """An expert's two Linear layers (Linear, ReLU, Linear, ReLU)."""
    return [m for m in expert.children() if isinstance(m, nn.Linear)]


def _hash_sum(table: nn.Embedding, hashes: torch.Tensor) -> torch.Tensor:
    """Sum of the rows of ``hashes`` [N, h] (as ``table(hashes).sum(1)``, without ReduceSum
    over the middle axis: in onnxruntime that reduction cost as much as a Gemm)."""
    out: torch.Tensor = table(hashes[:, 0])
    for j in range(1, hashes.shape[1]):
        out = out + table(hashes[:, j])
    return out
