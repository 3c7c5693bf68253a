"""Population stability index (PSI) over quantile bins of a reference sample.

PSI = Σ_b (a_b − e_b) · ln(a_b / e_b) over bins b, with e the reference fractions and a the
served ones; both are floored at ``EPS`` so an empty bin counts as rare, not as infinite.
Bins are cut at the reference's deciles: bin i holds ``edges[i-1] < x <= edges[i]`` and the
first and last bins are open, so every value lands somewhere (NaN goes to the last bin).
"""

from __future__ import annotations

import numpy as np

N_BINS = 10
EPS = 1e-4
WARN = 0.1  # the usual convention: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift
ALERT = 0.25


def bin_edges(values: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Interior edges at the reference's quantiles, deduplicated (a point mass is one bin).

    Edges are values of the sample (``method="lower"``), so each bin ``(e[i-1], e[i]]`` holds
    at least the sample's value ``e[i]``.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.zeros(0, dtype=np.float64)
    levels = np.arange(1, n_bins) / n_bins
    return np.unique(np.quantile(x, levels, method="lower"))


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin of each value (0 .. len(edges)), vectorised."""
    return np.searchsorted(edges, values, side="left")


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts per bin (len(edges) + 1 of them)."""
    return np.bincount(bin_index(edges, values), minlength=len(edges) + 1)


def fractions(counts: np.ndarray) -> np.ndarray:
    """Counts as fractions (zeros when there are none)."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else np.zeros_like(c)


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = EPS) -> float:
    """PSI of ``actual`` fractions against ``expected`` fractions (same bins)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def status(value: float | None, warn: float = WARN, alert: float = ALERT) -> str:
    """``ok`` / ``warn`` / ``alert`` of a PSI figure (``insufficient`` for None)."""
    if value is None:
        return "insufficient"
    return "alert" if value >= alert else "warn" if value >= warn else "ok"
