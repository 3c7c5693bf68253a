"""Feature definitions shared by offline training and online serving.

Every feature is defined exactly once here, in plain numpy/python (no torch, no pandas), so the
training pipeline, the stream ingest worker and the serving stages compute identical values.
"""

from shared.features.affinity import (
    decay_affinity,
    decay_factor,
    normalise_affinity,
    update_affinity,
)
from shared.features.config import DEFAULT_CONFIG, FeatureConfig
from shared.features.counters import (
    WINDOWS,
    bucket_of,
    count_in_window,
    smoothed_rate,
    window_start,
    windowed_count,
)
from shared.features.encoders import (
    ItemTable,
    encode_item_tower,
    encode_ranker,
    encode_user_tower,
)
from shared.features.hashing import hash_buckets, stable_u64
from shared.features.item import GENRES, N_GENRES, genre_multi_hot, year_features
from shared.features.profile import age_bucket, profile_tokens, zip_prefix
from shared.features.records import ItemFeatures, UserFeatures
from shared.features.schema import FeatureSchema, FeatureSchemaError, build_schema
from shared.features.timefeat import cyclic_time

__all__ = [
    "DEFAULT_CONFIG",
    "GENRES",
    "N_GENRES",
    "WINDOWS",
    "FeatureConfig",
    "FeatureSchema",
    "FeatureSchemaError",
    "ItemFeatures",
    "ItemTable",
    "UserFeatures",
    "age_bucket",
    "bucket_of",
    "build_schema",
    "count_in_window",
    "cyclic_time",
    "decay_affinity",
    "decay_factor",
    "encode_item_tower",
    "encode_ranker",
    "encode_user_tower",
    "genre_multi_hot",
    "hash_buckets",
    "normalise_affinity",
    "profile_tokens",
    "smoothed_rate",
    "stable_u64",
    "update_affinity",
    "window_start",
    "windowed_count",
    "year_features",
    "zip_prefix",
]
