"""RerankChain: builds the re-rank state from the stage input and runs the re-rankers in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from shared.model_loading import ModelBundle
from shared.pipeline.items import mask_to_multi_hot
from shared.pipeline.rerank_state import RerankInput, RerankState
from shared.pipeline.stages import Reranker
from shared.pipeline.types import Reranked

EmbeddingLookup = Callable[[list[str]], np.ndarray]


def embedding_lookup(models: Callable[[], ModelBundle]) -> EmbeddingLookup:
    """Item embeddings from the loaded index (zero rows for items it does not hold)."""

    def lookup(item_ids: list[str]) -> np.ndarray:
        index = models().index
        assert index is not None
        return index.embeddings(item_ids)

    return lookup


class RerankChain:
    """Score adjusters first, then the selector (MMR), then slot-level policies (exploration)."""

    def __init__(self, rerankers: Sequence[Reranker], embeddings: EmbeddingLookup | None) -> None:
        self.rerankers = list(rerankers)
        self.embeddings = embeddings

    @property
    def names(self) -> list[str]:
        """Re-ranker names in the order they run."""
        return [r.name for r in self.rerankers]

    def state(self, inp: RerankInput) -> RerankState:
        """The columns the re-rankers work on (embeddings looked up here, zeros if unknown)."""
        emb = (
            self.embeddings(inp.item_ids)
            if self.embeddings is not None
            else np.zeros((len(inp), 0), dtype=np.float32)
        )
        return RerankState(
            item_ids=inp.item_ids,
            base_score=inp.score,
            genres=mask_to_multi_hot(inp.genre_mask),
            added_ts=np.asarray(inp.added_ts, dtype=np.float64),
            impressions=np.asarray(inp.impressions, dtype=np.int64),
            embeddings=emb,
            k=inp.k,
            now=inp.now,
            seed=inp.seed,
            tunables=inp.tunables,
        )

    def rerank(self, inp: RerankInput) -> Reranked:
        """Run every re-ranker; the served list with propensities and per-item adjustments."""
        state = self.state(inp)
        for r in self.rerankers:
            r.rerank(state)
        return state.result()


def warm_up_rerank(bundle: ModelBundle, n_items: int = 200) -> None:
    """Re-rank a production-size synthetic list with ``bundle``'s embeddings."""
    from services.reranking.pipeline import build_rerank_chain
    from shared.pipeline.warmup import synthetic_rerank_input

    index = bundle.index
    if index is None:
        return
    ids = index.ids(np.arange(min(len(index), n_items)))
    chain = build_rerank_chain(embedding_lookup(lambda: bundle))
    for _ in range(2):
        chain.rerank(synthetic_rerank_input(ids))
