"""ItemIndexer: item cold start — a new item's embedding comes from the item tower and goes
straight into the ANN index (no rebuild), and the item goes into the online catalog."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from shared.features import ItemFeatures, encode_item_tower
from shared.model_loading import ModelBundle
from shared.online_store.types import ItemRecord
from shared.pipeline.store import FeatureReader
from shared.pipeline.wire import ID_PATTERN


class ItemBody(BaseModel):
    """Request body of POST /v1/items."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(pattern=ID_PATTERN)
    title: str = Field("", max_length=500)
    genres: list[str] = Field(default_factory=list, max_length=19)
    release_year: int | None = Field(None, ge=1800, le=2200)
    age_restricted: bool = False
    regions: list[str] = Field(default_factory=list, max_length=300)

    def to_record(self) -> ItemRecord:
        """The catalog record, added now."""
        return ItemRecord(
            item_id=self.item_id, title=self.title, genres=tuple(self.genres),
            release_year=self.release_year, added_ts=time.time(),
            age_restricted=self.age_restricted, regions=frozenset(self.regions),
        )  # fmt: skip


class ItemIndexer:
    """Embeds items with the loaded item tower and inserts them into the loaded index."""

    def __init__(self, store: FeatureReader, models: Callable[[], ModelBundle]) -> None:
        self.store = store
        self.models = models

    async def add(self, record: ItemRecord) -> int:
        """Catalog write first (so filters know the item), then the index; returns its label."""
        bundle = self.models()
        assert bundle.item_tower is not None and bundle.index is not None
        await self.store.put_items([record])
        feats = ItemFeatures(
            item_id=record.item_id, genres=record.genres, release_year=record.release_year
        )
        emb = bundle.item_tower.run(encode_item_tower([feats], bundle.item_tower.config))
        labels = bundle.index.add([record.item_id], emb["item_embedding"])
        return int(labels[0])
