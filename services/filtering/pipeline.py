"""The filters of this service, declared as data, cheapest first.

Adding a filter means one new class in ``filters/`` and one line here.
"""

from __future__ import annotations

from services.filtering.chain import FilterChain
from services.filtering.filters import (
    AgeRestrictionFilter,
    BlockedFilter,
    DuplicateFilter,
    RegionRestrictionFilter,
    SeenFilter,
)
from shared.pipeline.stages import CandidateFilter

FILTERS: tuple[type[CandidateFilter], ...] = (
    AgeRestrictionFilter,  # vectorised over two bool columns
    BlockedFilter,  # usually an empty set: free
    RegionRestrictionFilter,  # one pass, mostly empty region sets
    SeenFilter,  # one set lookup per item, removes the most
    DuplicateFilter,  # a sort; merging already de-duplicated
)


def build_filter_chain(disabled: frozenset[str] = frozenset()) -> FilterChain:
    """The filtering stage as declared above (``disabled`` names are skipped: kill switch)."""
    filters = [cls() for cls in FILTERS]
    return FilterChain([f for f in filters if f.name not in disabled])
