"""The Redis online store: key layout, write side (ingest, bootstrap) and read side (serving)."""

from shared.online_store.config import DEFAULT_STORE_CONFIG, StoreConfig
from shared.online_store.reader import OnlineStore
from shared.online_store.types import ItemBatch, ItemRecord, UserProfile, UserState

__all__ = [
    "DEFAULT_STORE_CONFIG",
    "ItemBatch",
    "ItemRecord",
    "OnlineStore",
    "StoreConfig",
    "UserProfile",
    "UserState",
]
