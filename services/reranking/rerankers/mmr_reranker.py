"""MMRReranker: maximal marginal relevance over genre and embedding similarity, genre-capped."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from services.reranking.rerank_state import RerankState
from shared.features.genre_mask import genre_columns
from shared.pipeline.knobs import Knobs


class MMRKnobs(Knobs, frozen=True):
    """Relevance against novelty, how similarity is measured, and the cap per genre."""

    lambda_: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = msgspec.field(
        default=0.7, name="lambda"
    )
    embedding_weight: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    genre_cap: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5


def similarity(genres: np.ndarray, emb: np.ndarray, emb_weight: float) -> np.ndarray:
    """[n, n] item similarity: weighted cosine of embeddings (clipped at 0) and of genres."""
    g = genres / np.maximum(np.linalg.norm(genres, axis=1, keepdims=True), 1e-6)
    sim = (1.0 - emb_weight) * (g @ g.T)
    if emb_weight > 0 and emb.size:
        sim += emb_weight * np.clip(emb @ emb.T, 0.0, 1.0)
    return np.asarray(sim, dtype=np.float32)


class MMRReranker:
    """Greedy selection of k items maximising lambda * relevance - (1 - lambda) * redundancy.

    Relevance is the current score min-max scaled over the pool (the active items sent);
    redundancy is the highest similarity to an item already selected. An item whose genres
    already fill ``genre_cap`` slots is skipped while any other item is left.
    """

    name = "mmr"
    needs = ("genre_mask",)
    provides = ("adjust_mmr_redundancy",)
    Knobs = MMRKnobs

    def rerank(self, state: RerankState, knobs: MMRKnobs) -> None:
        """Fill ``state.order`` with the selected rows and record each one's redundancy."""
        pool = state.top_active(len(state))
        k = min(state.k, len(pool))
        rel = state.score[pool]
        span = float(rel.max() - rel.min()) if len(pool) else 0.0
        rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
        genres = state.genres[pool]
        emb = state.embeddings[pool] if knobs.embedding_weight > 0 else np.zeros((len(pool), 0))
        sim = similarity(genres, emb, knobs.embedding_weight)
        masks = state.frame["genre_mask"][pool].tolist()
        picked, redundancy = self._select(
            rel, sim, genres > 0, masks, k, knobs.lambda_, knobs.genre_cap
        )
        state.order = pool[picked]
        penalty = np.zeros(len(state), dtype=np.float32)
        penalty[state.order] = -(1.0 - knobs.lambda_) * redundancy
        state.adjustments["mmr_redundancy"] = penalty
        state.applied.append(self.name)

    @staticmethod
    def _select(
        rel: np.ndarray, sim: np.ndarray, genres: np.ndarray, masks: list[int], k: int,
        lam: float, cap: int,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        # Two numpy calls per pick. An item's MMR value only falls as items are picked:
        # lam·rel - (1-lam)·max(sim to the picked) is the running minimum of the rows of
        # drop = lam·rel - (1-lam)·sim, one matrix computed once. On lists of ~100 items each
        # call's overhead is the cost (six calls a pick took twice as long), so the genre
        # counting is plain Python over each item's few genres.
        n = len(rel)
        drop = (lam * rel).astype(np.float32)[None, :] - np.float32(1.0 - lam) * sim
        value = (lam * rel).astype(np.float32)
        open_value: np.ndarray | None = None  # value, items of full genres at -inf (once one is)
        of_item = [genre_columns(m) for m in masks] if cap < k else [()] * n
        count = [0] * genres.shape[1]
        picked = np.empty(k, dtype=np.int64)
        for step in range(k):
            j = int(value.argmax()) if open_value is None else int(open_value.argmax())
            if open_value is not None and open_value[j] == -np.inf:
                j = int(value.argmax())  # the cap yields when nothing else is left
            picked[step] = j
            for g in of_item[j]:
                count[g] += 1
                if count[g] == cap:  # the genre is full: its items wait
                    if open_value is None:
                        open_value = value.copy()
                    open_value[genres[:, g]] = -np.inf
            np.minimum(value, drop[j], out=value)
            value[j] = -np.inf
            if open_value is not None:
                np.minimum(open_value, drop[j], out=open_value)
                open_value[j] = -np.inf
        # each pick's redundancy: its highest similarity to the items picked before it
        chosen = sim[np.ix_(picked, picked)]
        redundancy = np.tril(chosen, -1).max(axis=1, initial=0.0).astype(np.float32)
        return picked, redundancy
