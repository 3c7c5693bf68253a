"""Candidate filters, one class per reason; each says which rows it keeps."""

from services.filtering.filters.age_restriction_filter import AgeRestrictionFilter
from services.filtering.filters.blocked_filter import BlockedFilter
from services.filtering.filters.duplicate_filter import DuplicateFilter
from services.filtering.filters.region_restriction_filter import RegionRestrictionFilter
from services.filtering.filters.seen_filter import SeenFilter

__all__ = [
    "AgeRestrictionFilter",
    "BlockedFilter",
    "DuplicateFilter",
    "RegionRestrictionFilter",
    "SeenFilter",
]
