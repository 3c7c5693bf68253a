"""The filters of this service, declared as data, cheapest first.

Adding a filter means one new class in ``filters/`` (its name, the columns it needs, its
knobs) and one line here; the gateway then hydrates and sends those columns by itself.
"""

from __future__ import annotations

from typing import Any

from services.filtering.filters import (
    AgeRestrictionFilter,
    BlockedFilter,
    DuplicateFilter,
    RegionRestrictionFilter,
    SeenFilter,
)
from services.filtering.stage import FilteringStage
from shared.pipeline.components import load_plugins

FILTERS: tuple[type[Any], ...] = (
    AgeRestrictionFilter,  # two bool columns
    BlockedFilter,  # one bool column, usually all False
    RegionRestrictionFilter,  # a string check only for restricted items
    SeenFilter,  # one bool column, removes the most
    DuplicateFilter,  # a hash per id; merging already de-duplicated
)


def build_filtering(disabled: frozenset[str] = frozenset(), plugins: str = "") -> FilteringStage:
    """The filtering stage as declared above, kill switches off, plugin filters last."""
    filters = [cls() for cls in FILTERS] + load_plugins(plugins, "filter")
    return FilteringStage([f for f in filters if f.name not in disabled])
