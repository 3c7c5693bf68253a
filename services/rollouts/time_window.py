"""drop_before: the expiry both joins use on their insertion-ordered, time-stamped entries."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

_V = TypeVar("_V")


def drop_before(
    entries: OrderedDict[str, _V], cutoff: float, time_of: Callable[[_V], float]
) -> None:
    """Pop entries from the front while their time is before ``cutoff``."""
    while entries and time_of(next(iter(entries.values()))) < cutoff:
        entries.popitem(last=False)
