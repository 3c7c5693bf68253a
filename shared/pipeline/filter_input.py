"""FilterInput: what the filters look at, for the items still in the running."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.online_store.types import UserState
from shared.pipeline.items import ItemColumns


@dataclass(frozen=True)
class FilterUser:
    """The user attributes filters need (a small, serialisable slice of UserState)."""

    seen: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset()
    age: int | None = None
    region: str | None = None

    @classmethod
    def from_state(cls, user: UserState) -> FilterUser:
        """The filter-relevant part of a user's online state."""
        return cls(user.seen, user.blocked, user.features.age, user.region)


@dataclass
class FilterInput:
    """Candidate rows and their restriction attributes, plus the user."""

    item_ids: list[str]
    found: np.ndarray  # bool: the catalog knows the item (restrictions are known)
    age_restricted: np.ndarray  # bool
    regions: list[frozenset[str]]
    user: FilterUser

    def __len__(self) -> int:
        return len(self.item_ids)

    @classmethod
    def build(cls, items: ItemColumns, user: FilterUser) -> FilterInput:
        """From the request's item columns."""
        return cls(items.item_ids, items.found, items.age_restricted, items.regions, user)

    def take(self, rows: np.ndarray) -> FilterInput:
        """The rows ``rows`` (int indices), in that order."""
        return FilterInput(
            [self.item_ids[i] for i in rows],
            self.found[rows],
            self.age_restricted[rows],
            [self.regions[i] for i in rows],
            self.user,
        )
