"""Records the online store reads and writes; the serving stages code against these.

Feature values themselves are the ``shared.features`` records (``UserFeatures``,
``ItemFeatures``); these dataclasses add what serving needs around them (seen/blocked sets,
fatigue counts, catalog attributes used by filters) in a columnar form for item batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.features.records import ItemFeatures, UserFeatures


@dataclass(frozen=True)
class ItemRecord:
    """A catalog entry: content plus the attributes filters need (age and region restrictions)."""

    item_id: str
    title: str = ""
    genres: tuple[str, ...] = ()
    release_year: int | None = None
    added_ts: float = 0.0
    age_restricted: bool = False
    regions: frozenset[str] = frozenset()  # empty: available everywhere


@dataclass(frozen=True)
class UserProfile:
    """Static user attributes written by the bootstrap job (and by a profile API later)."""

    user_id: str
    age: int | None = None
    gender: str | None = None
    occupation: str | None = None
    zip_code: str | None = None
    region: str | None = None


@dataclass
class UserState:
    """Everything the request path knows about a user at ``now``.

    ``known`` is False for a user with neither a profile nor any event (cold start path).
    ``features.history`` is oldest → newest (the encoder takes the last ``hist_len``).
    """

    features: UserFeatures
    known: bool = False
    seen: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset()  # hidden or reported items
    impressions: dict[str, int] = field(default_factory=dict)  # fatigue: times shown
    segment: str = "unknown"
    region: str | None = None

    @property
    def user_id(self) -> str:
        """The user's id."""
        return self.features.user_id


@dataclass
class ItemBatch:
    """Columnar features of a batch of items, in the order they were asked for.

    Rows of items absent from the catalog have ``found`` False, empty genres and zero counters;
    ``regions[i]`` empty means available everywhere.
    """

    item_ids: list[str]
    found: np.ndarray  # [n] bool
    features: list[ItemFeatures]  # windowed counters filled in at read time
    added_ts: np.ndarray  # [n] float64 epoch seconds (0 when unknown)
    age_restricted: np.ndarray  # [n] bool
    regions: list[frozenset[str]]
    ctr: np.ndarray  # [n] float32 smoothed click-through rate

    def __len__(self) -> int:
        return len(self.item_ids)

    @classmethod
    def empty(cls) -> ItemBatch:
        """A batch of no items."""
        no = np.zeros(0, dtype=bool)
        return cls([], no, [], np.zeros(0), no.copy(), [], np.zeros(0, dtype=np.float32))
