"""Cyclic time-of-day and day-of-week features."""

from __future__ import annotations

import numpy as np

_DAY = 86_400.0
_WEEK = 7 * _DAY
# 1970-01-01 was a Thursday; shift so that weekday 0 is Monday.
_EPOCH_WEEKDAY_OFFSET = 3 * _DAY


def cyclic_time(ts: np.ndarray | float) -> np.ndarray:
    """[n, 4] float32: sin/cos of hour of day, sin/cos of weekday (UTC) of unix seconds ``ts``."""
    t = np.atleast_1d(np.asarray(ts, dtype=np.float64))
    day_phase = 2 * np.pi * np.mod(t, _DAY) / _DAY
    week_phase = 2 * np.pi * np.floor(np.mod(t + _EPOCH_WEEKDAY_OFFSET, _WEEK) / _DAY) / 7.0
    out = np.stack(
        [np.sin(day_phase), np.cos(day_phase), np.sin(week_phase), np.cos(week_phase)], axis=1
    )
    return out.astype(np.float32)
