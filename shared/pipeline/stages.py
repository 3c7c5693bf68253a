"""The one-method interfaces of the pipeline's stages.

A source finds candidates, a filter removes them (saying why), a scorer scores them, a re-ranker
reorders them. Implementations know nothing of HTTP or Kafka; transports wrap them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from shared.online_store.types import UserState
from shared.pipeline.filter_input import FilterInput
from shared.pipeline.rerank_state import RerankState
from shared.pipeline.tunables import Tunables
from shared.pipeline.types import Removed, SourceResult


class CandidateSource(Protocol):
    """Finds candidate items for a user; a failure yields no items, never a failed request."""

    name: str
    quota: int  # at most this many items
    timeout_s: float  # the source's own deadline inside candidate generation
    serves_unknown_users: bool  # runs for users the store knows nothing about

    async def fetch(self, user: UserState, now: float, tunables: Tunables) -> SourceResult:
        """Up to ``quota`` items with their source score, best first."""
        ...


class CandidateFilter(Protocol):
    """Removes candidates for one reason; returns the kept mask and the removals."""

    name: str

    def apply(self, batch: FilterInput) -> tuple[np.ndarray, Removed]:
        """(bool mask of kept rows, the removed items with this filter's reason)."""
        ...


class Reranker(Protocol):
    """Adjusts scores, drops or places items of the ranked list; records what it did."""

    name: str

    def rerank(self, state: RerankState) -> None:
        """Mutate ``state`` in place (scores, active mask, order, propensities, adjustments)."""
        ...
