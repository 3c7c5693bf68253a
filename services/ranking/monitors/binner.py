"""Bin counts of a whole feature matrix in one searchsorted and one bincount.

Each quantity's values are clipped just outside its outer edges (the outer bins are open, so
that moves no value to another bin) and mapped affinely into its own interval ``[2j, 2j+1]``;
the edges are mapped the same way and concatenated, so a single ``searchsorted`` bins every
column at once, and its index plus the column number is the value's slot in one flat count
array. No loop over rows or columns: about ten numpy calls per matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.monitors.reference import Binned


@dataclass(frozen=True)
class Plan:
    """Per-value quantity, clip bounds and affine map of one flat layout."""

    columns: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    scale: np.ndarray
    offset: np.ndarray


class Binner:
    """The bins of several quantities (columns) at once."""

    def __init__(self, binned: Sequence[Binned]) -> None:
        k = len(binned)
        self.n_bins = np.array([len(b.edges) + 1 for b in binned], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.n_bins)]).astype(np.int64)
        self.size = int(self.starts[-1])
        lo = np.array([b.edges[0] if len(b.edges) else 0.0 for b in binned]) - 1.0
        hi = np.array([b.edges[-1] if len(b.edges) else 0.0 for b in binned]) + 1.0
        self.lo, self.hi, self.scale = lo, hi, 1.0 / (hi - lo)
        self.offset = 2.0 * np.arange(k) - lo * self.scale
        self.columns = np.arange(k, dtype=np.int64)
        self.edges = np.concatenate(
            [np.zeros(0), *(b.edges * self.scale[j] + self.offset[j] for j, b in enumerate(binned))]
        )

    def plan(self, columns: np.ndarray) -> Plan:
        """The per-value constants of a flat layout (``columns[i]``: the quantity of value i);
        cache it: a request's layout depends only on its row count."""
        c = np.asarray(columns, dtype=np.int64)
        return Plan(c, self.lo[c], self.hi[c], self.scale[c], self.offset[c])

    def counts(self, values: np.ndarray, plan: Plan | None = None) -> np.ndarray:
        """Flat counts (``size`` of them; quantity j's bins from ``starts[j]``) of ``values``:
        a [rows, quantities] matrix, or a flat vector laid out by ``plan``. Bin = number of
        the quantity's edges below the value, as ``searchsorted(edges, x, "left")``; NaN
        counts in the first bin."""
        if plan is None:
            p = Plan(self.columns, self.lo, self.hi, self.scale, self.offset)
        else:
            p = plan
        x: np.ndarray = np.fmax(values, p.lo)  # fmax: NaN becomes lo (the first bin)
        np.minimum(x, p.hi, out=x)
        x *= p.scale
        x += p.offset
        slots = np.searchsorted(self.edges, x, side="left")
        slots += p.columns
        return np.bincount(slots.ravel(), minlength=self.size)

    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        """Flat counts back into one array per quantity."""
        return [flat[a:b] for a, b in zip(self.starts[:-1], self.starts[1:], strict=True)]
