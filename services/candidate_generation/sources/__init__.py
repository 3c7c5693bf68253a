"""Candidate sources: one class per source, each with a quota, a deadline and fail-open."""

from services.candidate_generation.sources.base import SourceCall, SourceResult
from services.candidate_generation.sources.ease_source import EaseSource
from services.candidate_generation.sources.fresh_items_source import FreshItemsSource
from services.candidate_generation.sources.item_to_item_source import ItemToItemSource
from services.candidate_generation.sources.segment_popular_source import SegmentPopularSource
from services.candidate_generation.sources.trending_source import TrendingSource
from services.candidate_generation.sources.two_tower_source import TwoTowerSource

__all__ = [
    "EaseSource",
    "FreshItemsSource",
    "ItemToItemSource",
    "SegmentPopularSource",
    "SourceCall",
    "SourceResult",
    "TrendingSource",
    "TwoTowerSource",
]
