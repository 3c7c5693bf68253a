"""Request bodies and shared parameter types of the feature_store API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, Field

from shared.online_store.types import ItemRecord
from shared.platform.contracts import EPOCH_MAX_S, EPOCH_MIN_S, INTEGRAL, STRICT_BODY, NowQuery

# No whitespace or slash. \x85 (NEL) is spelled out: pydantic's \s matches it, JSON Schema's
# (ECMA-262) does not, and the document must mean what the server checks.
ID_PATTERN = r"^[^\s\x85/]+$"
Id = Annotated[str, Field(min_length=1, max_length=256, pattern=ID_PATTERN)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=256, pattern=ID_PATTERN)]
Year = Annotated[int, Field(ge=1800, le=2200), INTEGRAL]
Epoch = Annotated[float, Field(ge=EPOCH_MIN_S, le=EPOCH_MAX_S, description="epoch seconds")]
__all__ = ["Id", "ItemFeaturesRequest", "KQuery", "NewItem", "NewItems", "NowQuery", "UserIdPath"]
KQuery = Annotated[int, Query(ge=1, le=1000)]


class ItemFeaturesRequest(BaseModel):
    """Items whose features to read, in the order wanted."""

    model_config = STRICT_BODY

    item_ids: list[Id] = Field(min_length=1)
    now: Epoch | None = None


class NewItem(BaseModel):
    """A catalog entry to add (``added_ts`` defaults to the server clock)."""

    model_config = STRICT_BODY

    item_id: Id
    title: str = Field(default="", max_length=1000)
    genres: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    release_year: Year | None = None
    added_ts: Epoch | None = None
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

    model_config = STRICT_BODY

    items: list[NewItem] = Field(min_length=1, max_length=1000)
