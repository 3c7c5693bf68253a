"""Where the global temporal split cuts an interaction log: one definition for every reader.

Training splits its data here (``training.data.splits.temporal_split``) and the feature store's
bootstrap job replays only the training period (``--train-only``), so both must cut at the same
timestamps.
"""

from __future__ import annotations

import numpy as np


def temporal_cutoffs(
    timestamps: np.ndarray, val_frac: float = 0.1, test_frac: float = 0.1
) -> tuple[float, float]:
    """(validation start, test start): the timestamps at those quantiles of the sorted log.

    Thresholds are timestamps, so events sharing a second never straddle a boundary.
    """
    ts = np.sort(np.asarray(timestamps))
    n = len(ts)
    if n == 0:
        raise ValueError("cannot split an empty interaction log")
    return float(ts[int(n * (1.0 - val_frac - test_frac))]), float(ts[int(n * (1.0 - test_frac))])
