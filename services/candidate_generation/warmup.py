"""Warm-up of a retrieval version before it goes live (see shared.pipeline.synthetic)."""

from __future__ import annotations

import time

import numpy as np

from shared.features import ItemFeatures, encode_item_tower, encode_user_tower
from shared.models.bundle import ModelBundle
from shared.pipeline.synthetic import synthetic_user


def warm_up_retrieval(bundle: ModelBundle) -> None:
    """User tower -> ANN top-N, the item-to-item batched query, the item tower on one item,
    the EASE weights over a 100-item history."""
    tower, index, item_tower = bundle.user_tower, bundle.index, bundle.item_tower
    if tower is None or index is None or item_tower is None:
        return
    ids = index.ids(np.arange(min(len(index), 500)))
    for _ in range(2):
        feeds = encode_user_tower([synthetic_user(ids)], time.time(), tower.config)
        emb = tower.run(feeds)["user_embedding"]
        index.search(emb, 500)
        index.search(index.embeddings(ids[:5]), 35)
        feats = ItemFeatures(item_id="warmup", genres=("Drama",), release_year=1990)
        item_tower.run(encode_item_tower([feats], item_tower.config))
        if bundle.item_item is not None:
            bundle.item_item.top(index.rows(ids[:100]), 100)
