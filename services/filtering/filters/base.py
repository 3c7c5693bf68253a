"""Helpers shared by the filters."""

from __future__ import annotations

import numpy as np

from shared.pipeline.filter_input import FilterInput
from shared.pipeline.types import Removed


def outcome(batch: FilterInput, keep: np.ndarray, reason: str) -> tuple[np.ndarray, Removed]:
    """(keep mask, the removed items under ``reason``)."""
    gone = np.flatnonzero(~keep)
    return keep, Removed(reason, [batch.item_ids[i] for i in gone])


def membership(item_ids: list[str], members: frozenset[str]) -> np.ndarray:
    """Bool mask: which ids are in ``members`` (set lookups; no per-item objects built)."""
    if not members:
        return np.zeros(len(item_ids), dtype=bool)
    return np.fromiter((i in members for i in item_ids), bool, len(item_ids))
