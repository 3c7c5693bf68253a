"""ItemIndexer: item cold start — a new item's embedding comes from the item tower and goes
straight into the ANN index (no rebuild), and the item goes into the online catalog.

Items reach the index three ways:

- ``POST /v1/items`` on this service: catalog write, embed, insert; retrievable on return;
- the sync loop: items another replica (or the feature_store's ``POST /v1/items``) added to
  the catalog are embedded and inserted within ``index_sync_s``;
- a hot-swapped model bundle: the items added at run time are embedded again with the new
  item tower before the bundle goes live (``reapply``), so a swap never drops them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.features import ItemFeatures, encode_item_tower
from shared.model_loading import ModelBundle, ModelLoadError
from shared.online_store.types import ItemRecord
from shared.pipeline.store import FeatureReader
from shared.pipeline.wire import ID_PATTERN

log = logging.getLogger(__name__)


class ItemBody(BaseModel):
    """Request body of POST /v1/items."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(pattern=ID_PATTERN)
    title: str = Field(default="", max_length=500)
    genres: list[str] = Field(default_factory=list, max_length=19)
    release_year: int | None = Field(default=None, ge=1800, le=2200)
    age_restricted: bool = False
    regions: list[str] = Field(default_factory=list, max_length=300)

    def to_record(self) -> ItemRecord:
        """The catalog record, added now."""
        return ItemRecord(
            item_id=self.item_id, title=self.title, genres=tuple(self.genres),
            release_year=self.release_year, added_ts=time.time(),
            age_restricted=self.age_restricted, regions=frozenset(self.regions),
        )  # fmt: skip


def embed_items(bundle: ModelBundle, items: Sequence[ItemFeatures]) -> np.ndarray:
    """[n, dim] item-tower embeddings of ``items`` (the training pipeline's own encoder)."""
    tower = bundle.item_tower
    if tower is None:
        raise RuntimeError("this process did not load an item tower")
    out = tower.run(encode_item_tower(list(items), tower.config))
    return np.asarray(out["item_embedding"], dtype=np.float32)


class ItemIndexer:
    """Embeds items with the loaded item tower and inserts them into the loaded index."""

    def __init__(self, store: FeatureReader, models: Callable[[], ModelBundle]) -> None:
        self.store = store
        self.models = models
        self.added: dict[str, ItemFeatures] = {}  # items this process indexed at run time

    async def add(self, record: ItemRecord) -> int:
        """Catalog write first (so filters know the item), then the index; returns its label."""
        bundle = self.models()
        await self.store.put_items([record])
        feats = ItemFeatures(
            item_id=record.item_id, genres=record.genres, release_year=record.release_year
        )
        return int(self._insert(bundle, [feats])[0])

    def _insert(self, bundle: ModelBundle, feats: list[ItemFeatures]) -> np.ndarray:
        if bundle.index is None:
            raise RuntimeError("this process did not load an item index")
        labels = bundle.index.add([f.item_id for f in feats], embed_items(bundle, feats))
        self.added.update((f.item_id, f) for f in feats)
        return labels

    def reapply(self, bundle: ModelBundle) -> None:
        """Insert the run-time items into a new bundle before it goes live (hot swap)."""
        if self.added and bundle.index is not None:
            self._insert(bundle, list(self.added.values()))

    async def sync(self, now: float, lookback_s: float, limit: int = 1000) -> int:
        """Index catalog items added within ``lookback_s`` that the index lacks; how many."""
        bundle = self.models()
        if bundle.index is None:
            return 0
        recent = await self.store.fresh_items(limit, now, lookback_s)
        ids = [item_id for item_id, _ in recent]
        missing = [i for i, row in zip(ids, bundle.index.rows(ids), strict=True) if row < 0]
        if not missing:
            return 0
        batch = await self.store.get_items(missing, now)
        feats = [
            ItemFeatures(item_id=f.item_id, genres=f.genres, release_year=f.release_year)
            for f, found in zip(batch.features, batch.found, strict=True)
            if found
        ]
        if feats:
            self._insert(bundle, feats)
            log.info("indexed catalog additions", extra={"n": len(feats)})
        return len(feats)


async def sync_forever(indexer: ItemIndexer, every_s: float, lookback_s: float) -> None:
    """The sync loop; a failed round (store down, models loading) is retried next time."""
    while True:
        try:
            await indexer.sync(time.time(), lookback_s)
        except ModelLoadError:
            pass  # models still loading: readiness already says so
        except Exception as exc:  # the store may be down; serving goes on without new items
            log.warning("index sync failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        await asyncio.sleep(every_s)
