"""What sources are built from: the online store and the loaded models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.model_loading import ModelBundle
from shared.pipeline.store import FeatureReader
from shared.pipeline.types import SourceResult


@dataclass
class SourceDeps:
    """Shared handles every source may use; ``models()`` raises while models are loading."""

    store: FeatureReader
    models: Callable[[], ModelBundle]


def from_pairs(source: str, pairs: list[tuple[str, float]]) -> SourceResult:
    """A result from the store's (item_id, score) lists."""
    ids = [p[0] for p in pairs]
    scores = np.fromiter((p[1] for p in pairs), np.float32, len(pairs))
    return SourceResult(source, ids, scores)
