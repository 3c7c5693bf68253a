"""Time-decayed user×genre affinity, updated per event online and replayed offline.

What one event adds (its type's ``affinity_weight``) is declared in ``shared.event_semantics``.
"""

from __future__ import annotations

import numpy as np


def decay_factor(delta_t: float | np.ndarray, half_life: float) -> float | np.ndarray:
    """Exponential decay multiplier after ``delta_t`` seconds (never grows for delta_t < 0)."""
    return np.power(0.5, np.maximum(np.asarray(delta_t, dtype=np.float64), 0.0) / half_life)


def decay_affinity(old: np.ndarray, delta_t: float, half_life: float) -> np.ndarray:
    """Affinity vector ``old`` aged by ``delta_t`` seconds."""
    return np.asarray(old, dtype=np.float64) * decay_factor(delta_t, half_life)


def update_affinity(
    old: np.ndarray | None,
    old_ts: float | None,
    event_ts: float,
    genres: np.ndarray,
    weight: float,
    half_life: float,
) -> tuple[np.ndarray, float]:
    """Apply one event: decay to ``event_ts`` then add ``weight`` spread over the item's genres.

    Returns the new raw vector and its reference time (store both).
    """
    g = np.asarray(genres, dtype=np.float64)
    if old is None or old_ts is None:
        base = np.zeros_like(g)
        ref_ts = event_ts
    else:
        base = decay_affinity(old, event_ts - old_ts, half_life)
        ref_ts = max(event_ts, old_ts)
    total = g.sum()
    if total > 0:
        base = base + weight * g / total
    return base, ref_ts


def normalise_affinity(raw: np.ndarray) -> np.ndarray:
    """Model input: the raw vector scaled to sum 1 (all zeros stays zeros).

    A common decay factor cancels out, so this value does not depend on when it is read.
    """
    raw = np.asarray(raw, dtype=np.float64)
    s = raw.sum(axis=-1, keepdims=True)
    scaled: np.ndarray = np.divide(raw, s, out=np.zeros_like(raw), where=s > 0).astype(np.float32)
    return scaled
