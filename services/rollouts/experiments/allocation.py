"""Slices of a layer: each running experiment holds one range [lo, hi) of its layer's [0, 1).

A user's place in a layer is a hash independent of every experiment, so a range held for an
experiment's whole life keeps the same users in it (changing weights moves no one in or out).
A new experiment takes the first free gap wide enough (first fit); stopping frees its range.
Ranges are never split: the gateway applies one slice per experiment.
"""

from __future__ import annotations

from collections.abc import Iterable

Range = tuple[float, float]
EPS = 1e-9  # float sums of shares (0.1 + 0.2) must not make an exact fit fail


def free_gaps(taken: Iterable[Range]) -> list[Range]:
    """The free parts of [0, 1) between the ``taken`` ranges, in order."""
    gaps, edge = [], 0.0
    for lo, hi in sorted(taken):
        if lo - edge > EPS:
            gaps.append((edge, lo))
        edge = max(edge, hi)
    if 1.0 - edge > EPS:
        gaps.append((edge, 1.0))
    return gaps


def first_fit(taken: Iterable[Range], traffic: float) -> Range | None:
    """The first free range of width ``traffic`` (None: no gap is wide enough)."""
    for lo, hi in free_gaps(taken):
        if hi - lo >= traffic - EPS:
            # Rounded so that ranges read as declared (0.4 + 0.2 is 0.6000000000000001); an
            # exact fit ends at the gap's edge, not a rounding error short of it.
            end = min(hi, round(lo + traffic, 12))
            return lo, hi if hi - end <= EPS else end
    return None
