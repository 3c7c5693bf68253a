"""ItemIndexer: item cold start — a new item's embedding comes from the item tower and goes
straight into the ANN index (no rebuild), and the item goes into the online catalog.

Every process that holds an item index runs one (candidate_generation, reranking for its MMR
embeddings, the in-process gateway). Items reach an index three ways:

- ``POST /v1/items`` on candidate_generation: catalog write, embed, insert; retrievable on
  return;
- the sync loop: items another process (or the feature_store's ``POST /v1/items``) added to
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
from prometheus_client import Counter
from pydantic import BaseModel, Field

from shared.features import ItemFeatures, encode_item_tower
from shared.models.bundle import ModelBundle
from shared.models.onnx_model import ModelLoadError
from shared.online_store.store import FeatureReader
from shared.online_store.types import ItemRecord

log = logging.getLogger(__name__)

ITEMS_INDEXED = Counter(
    "cascade_index_items_added_total",
    "Items inserted into this process's ANN index at run time, by way (api, sync, hot_swap).",
    ["service", "way"],
)

DEFAULT_LOOKBACK_S = 7 * 86_400.0


class IndexSyncSettings(BaseModel):
    """Settings of a process holding an item index: how it picks up catalog additions."""

    index_sync_s: float = Field(
        default=2.0, gt=0, le=3600, description="catalog additions indexed every (s)"
    )
    index_sync_lookback_s: float = Field(
        default=DEFAULT_LOOKBACK_S, gt=0, description="catalog additions this recent are synced"
    )


def embed_items(bundle: ModelBundle, items: Sequence[ItemFeatures]) -> np.ndarray:
    """[n, dim] item-tower embeddings of ``items`` (the training pipeline's own encoder)."""
    tower = bundle.item_tower
    if tower is None:
        raise RuntimeError("this process did not load an item tower")
    out = tower.run(encode_item_tower(list(items), tower.config))
    return np.asarray(out["item_embedding"], dtype=np.float32)


class ItemIndexer:
    """Embeds items with each held item tower and inserts them into that version's index."""

    def __init__(
        self,
        store: FeatureReader | None,
        bundles: Callable[[], list[ModelBundle]],
        service: str = "pipeline",
    ) -> None:
        self.store = store  # set later by a service whose store opens in its lifespan
        self.bundles = bundles
        self.service = service
        self.added: dict[str, ItemFeatures] = {}  # items this process indexed at run time

    def _store(self) -> FeatureReader:
        if self.store is None:
            raise RuntimeError("no online store attached")
        return self.store

    def _held(self) -> list[ModelBundle]:
        held = [b for b in self.bundles() if b.index is not None]
        if not held:
            raise ModelLoadError("no item index loaded yet")
        return held

    async def add(self, record: ItemRecord) -> int:
        """Catalog write first (so filters know the item), then every held index; its label
        in the first (production's) index."""
        held = self._held()
        await self._store().put_items([record])
        feats = ItemFeatures(
            item_id=record.item_id, genres=record.genres, release_year=record.release_year
        )
        labels = [int(self._insert(bundle, [feats], "api")[0]) for bundle in held]
        return labels[0]

    def _insert(self, bundle: ModelBundle, feats: list[ItemFeatures], way: str) -> np.ndarray:
        if bundle.index is None:
            raise RuntimeError("this process did not load an item index")
        labels = bundle.index.add([f.item_id for f in feats], embed_items(bundle, feats))
        self.added.update((f.item_id, f) for f in feats)
        ITEMS_INDEXED.labels(self.service, way).inc(len(feats))
        return labels

    def reapply(self, bundle: ModelBundle) -> None:
        """Insert the run-time items into a new bundle before it goes live (hot swap)."""
        if self.added and bundle.index is not None:
            self._insert(bundle, list(self.added.values()), "hot_swap")

    async def sync(self, now: float, lookback_s: float, limit: int = 1000) -> int:
        """Index catalog items added within ``lookback_s`` that a held index lacks; how many."""
        total = 0
        recent: list[tuple[str, float]] | None = None
        for bundle in self._held():
            assert bundle.index is not None
            if recent is None:
                recent = await self._store().fresh_items(limit, now, lookback_s)
            ids = [item_id for item_id, _ in recent]
            missing = [i for i, row in zip(ids, bundle.index.rows(ids), strict=True) if row < 0]
            if not missing:
                continue
            batch = await self._store().get_items(missing, now)
            feats = [
                ItemFeatures(item_id=f.item_id, genres=f.genres, release_year=f.release_year)
                for f, found in zip(batch.features, batch.found, strict=True)
                if found
            ]
            if feats:
                self._insert(bundle, feats, "sync")
                log.info("indexed catalog additions", extra={"n": len(feats)})
                total += len(feats)
        return total


async def sync_forever(indexer: ItemIndexer, every_s: float, lookback_s: float) -> None:
    """The sync loop; a failed round (store down, models loading) is retried next time.

    A failure is logged when it starts and when it ends, not every round: a store that stays
    down for an hour must not write a warning every two seconds.
    """
    failing = False
    while True:
        try:
            await indexer.sync(time.time(), lookback_s)
        except ModelLoadError:
            pass  # models still loading: readiness already says so (retried next round)
        except Exception as exc:  # the store may be down; serving goes on without new items
            if not failing:
                log.warning("index sync failing", extra={"error": f"{type(exc).__name__}: {exc}"})
            failing = True
        else:
            if failing:
                log.info("index sync recovered")
            failing = False
        await asyncio.sleep(every_s)
