"""ExplorationReranker: a few slots show an item drawn from just below the list, with its
propensity recorded so off-policy evaluation can correct for it."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np

from services.reranking.rerank_state import RerankState
from shared.pipeline.knobs import Knobs


class ExplorationKnobs(Knobs, frozen=True):
    """How many slots explore, how often, and from how deep below the list."""

    slots: Annotated[int, msgspec.Meta(ge=0, le=10)] = 1
    rate: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    pool: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50


class ExplorationReranker:
    """Epsilon-style slots at evenly spaced positions; draws are uniform over the pool."""

    name = "exploration"
    needs = ()
    provides = ()
    Knobs = ExplorationKnobs

    def rerank(self, state: RerankState, knobs: ExplorationKnobs) -> None:
        """Replace slot items with random picks from the next ``pool`` items."""
        order = state.order if state.order is not None else state.top_active(state.k)
        order = np.array(order[: state.k], dtype=np.int64)
        slots = min(knobs.slots, len(order))
        outside = state.active.copy()
        outside[order] = False
        ranked = state.top_active(len(state))
        pool = ranked[outside[ranked]][: knobs.pool]
        state.applied.append(self.name)
        if slots == 0 or pool.size == 0:
            state.order = order
            return
        if knobs.rate > 0:
            state.explore_pool = pool
        rng = np.random.default_rng(state.seed)
        chosen = rng.permutation(pool.size)[:slots]
        for i, pos in enumerate(self.positions(len(order), slots)):
            if rng.random() >= knobs.rate or i >= chosen.size:
                state.propensity[order[pos]] = 1.0 - knobs.rate
                continue
            row = pool[chosen[i]]
            state.propensity[row] = knobs.rate / pool.size
            state.explored[row] = True
            order[pos] = row
        state.order = order

    @staticmethod
    def positions(k: int, slots: int) -> list[int]:
        """Evenly spaced slot positions (never the first: the top pick stays exploitative)."""
        return sorted({max(1, (k * (i + 1)) // (slots + 1)) for i in range(slots)} & set(range(k)))
