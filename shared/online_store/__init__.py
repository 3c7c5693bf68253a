"""The Redis online store: key layout, write side (ingest, bootstrap) and read side (serving).

The Redis-backed reader is ``shared.online_store.reader.OnlineStore``; it is not imported
here, so a process that only needs the store's records or its column list (the filtering
service) does not load the Redis client.
"""

from shared.online_store.config import DEFAULT_STORE_CONFIG, StoreConfig
from shared.online_store.types import ItemBatch, ItemRecord, UserProfile, UserState

__all__ = [
    "DEFAULT_STORE_CONFIG",
    "ItemBatch",
    "ItemRecord",
    "StoreConfig",
    "UserProfile",
    "UserState",
]
