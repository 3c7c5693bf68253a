"""Records the online store reads and writes; the serving stages code against these.

Feature values themselves are the ``shared.features`` records (``UserFeatures``,
``ItemFeatures``); these dataclasses add what serving needs around them (seen/blocked sets,
fatigue counts, catalog attributes used by filters) in a columnar form for item batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.encoders import ItemTable, item_id_hash, year_columns
from shared.features.item import N_GENRES
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
    arms: dict[str, str] = field(default_factory=dict)  # experiment id -> remembered arm
    # Items pushed out of the seen window are in the user's filter (online_store.seen_filter):
    # the item read checks the candidates against it, and only when there is one.
    seen_filter: bool = False

    @property
    def user_id(self) -> str:
        """The user's id."""
        return self.features.user_id


class LazyItemFeatures(Sequence[ItemFeatures]):
    """ItemFeatures records built on first access (the columnar fields serve the hot path)."""

    def __init__(self, n: int, build: Callable[[], list[ItemFeatures]]) -> None:
        self._n = n
        self._build: Callable[[], list[ItemFeatures]] | None = build
        self._rows: list[ItemFeatures] = []

    def _materialise(self) -> list[ItemFeatures]:
        if self._build is not None:
            self._rows, self._build = self._build(), None
        return self._rows

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> ItemFeatures: ...
    @overload
    def __getitem__(self, index: slice) -> list[ItemFeatures]: ...
    def __getitem__(self, index: int | slice) -> ItemFeatures | list[ItemFeatures]:
        return self._materialise()[index]

    def __iter__(self) -> Iterator[ItemFeatures]:
        return iter(self._materialise())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented


@dataclass
class ItemBatch:
    """Columnar features of a batch of items, in the order they were asked for.

    Rows of items absent from the catalog have ``found`` False, empty genres and zero counters;
    ``regions[i]`` empty means available everywhere. ``features`` holds one ``ItemFeatures``
    per item; the store fills the optional columns too, and :meth:`table` turns them into the
    encoders' ``ItemTable`` without building per-item objects (the ranker's fast path).
    """

    item_ids: list[str]
    found: np.ndarray  # [n] bool
    features: Sequence[ItemFeatures]  # windowed counters filled in at read time
    added_ts: np.ndarray  # [n] float64 epoch seconds (0 when unknown)
    age_restricted: np.ndarray  # [n] bool
    regions: list[frozenset[str]]
    ctr: np.ndarray  # [n] float32 smoothed click-through rate
    counts: np.ndarray | None = None  # [n, 4] float64: 1h, 24h, 7d, total interactions
    like_count: np.ndarray | None = None  # [n] float64
    release_year: np.ndarray | None = None  # [n] float64, NaN unknown
    genres: np.ndarray | None = None  # [n, N_GENRES] float32 multi-hot
    genre_mask: np.ndarray | None = None  # [n] int64: the genres as bits
    catalog_rows: np.ndarray | None = None  # rows of ``catalog`` (0: not in the catalog)
    catalog: Any = None  # the reader's CatalogColumns: text columns are taken from it on demand
    seen_earlier: np.ndarray | None = None  # [n] bool: in the user's filter (seen long ago)

    def __len__(self) -> int:
        return len(self.item_ids)

    def table(self, cfg: FeatureConfig = DEFAULT_CONFIG) -> ItemTable:
        """The batch as an ItemTable (what ``encode_ranker`` takes)."""
        if self.counts is None or self.like_count is None or self.release_year is None:
            return ItemTable.from_items(list(self.features), cfg)
        genres = self.genres
        if genres is None:
            genres = ItemTable.from_items(list(self.features), cfg).genres
        return ItemTable(
            item_ids=list(self.item_ids),
            id_hash=item_id_hash(self.item_ids, cfg),
            genres=genres,
            year=year_columns(self.release_year),
            release_year=self.release_year,
            counts=self.counts,
            like_count=self.like_count,
            rating_count=self.counts[:, 3],
        )

    @classmethod
    def empty(cls) -> ItemBatch:
        """A batch of no items."""
        no = np.zeros(0, dtype=bool)
        return cls(
            [], no, [], np.zeros(0), no.copy(), [], np.zeros(0, dtype=np.float32),
            np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros((0, N_GENRES), np.float32),
        )  # fmt: skip
