"""Request bodies and shared parameter types of the feature_store API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from shared.online_store.types import ItemRecord

Id = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s/]+$")]
UserIdPath = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[^\s/]+$")]
NowQuery = Annotated[float | None, Query(gt=0, description="epoch seconds; default: server clock")]
KQuery = Annotated[int, Query(ge=1, le=1000)]


class ItemFeaturesRequest(BaseModel):
    """Items whose features to read, in the order wanted."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[Id] = Field(min_length=1)
    now: float | None = Field(default=None, gt=0)


class NewItem(BaseModel):
    """A catalog entry to add (``added_ts`` defaults to the server clock)."""

    model_config = ConfigDict(extra="forbid")

    item_id: Id
    title: str = Field(default="", max_length=1000)
    genres: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    release_year: int | None = Field(default=None, ge=1800, le=2200)
    added_ts: float | None = Field(default=None, gt=0)
    age_restricted: bool = False
    regions: list[Annotated[str, Field(min_length=1, max_length=16)]] = Field(
        default_factory=list, max_length=300
    )

    def record(self, now: float) -> ItemRecord:
        """The catalog record."""
        return ItemRecord(
            item_id=self.item_id,
            title=self.title,
            genres=tuple(self.genres),
            release_year=self.release_year,
            added_ts=self.added_ts if self.added_ts is not None else now,
            age_restricted=self.age_restricted,
            regions=frozenset(self.regions),
        )


class NewItems(BaseModel):
    """Body of POST /v1/items."""

    model_config = ConfigDict(extra="forbid")

    items: list[NewItem] = Field(min_length=1, max_length=1000)
