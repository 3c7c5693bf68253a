"""The read side of the online store that the stages use (``shared.online_store.OnlineStore``).

Stages are typed against this protocol so tests can pass an in-memory store with the same
methods; production passes the Redis-backed OnlineStore.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.online_store.types import ItemBatch, ItemRecord, UserState


class FeatureReader(Protocol):
    """Async reads of user state, item batches and the precomputed popularity lists."""

    async def get_user(self, user_id: str, now: float) -> UserState:
        """The user's online state (``known`` False for a user the store has never seen)."""
        ...

    async def get_items(
        self, item_ids: Sequence[str], now: float, user: UserState | None = None
    ) -> ItemBatch:
        """Attributes and windowed counters of the items, in the order asked (with ``user``:
        also which of them that user saw before the seen window, ``seen_earlier``)."""
        ...

    async def remember_arms(self, user_id: str, arms: dict[str, str]) -> None:
        """Keep the experiment arms a user was first given (``UserState.arms`` on later reads)."""
        ...

    def cached_items(self, item_ids: Sequence[str], now: float) -> ItemBatch:
        """What this process still knows of the items without the store (fallback): cached
        catalog attributes, counters zero, items never seen not ``found``."""
        ...

    async def trending(self, k: int, now: float) -> list[tuple[str, float]]:
        """The k items trending at ``now`` with their trend scores."""
        ...

    async def popular_in_segment(
        self, segment: str, k: int, now: float | None = None
    ) -> list[tuple[str, float]]:
        """The k most popular items within a user segment, popularity decayed to ``now``."""
        ...

    async def fresh_items(self, k: int, now: float, max_age_s: float) -> list[tuple[str, float]]:
        """Up to k items added within ``max_age_s`` (newest first) with their added time."""
        ...

    async def put_items(self, items: Sequence[ItemRecord]) -> None:
        """Write catalog entries (the item-add API)."""
        ...
