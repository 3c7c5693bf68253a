"""Store-level knobs that are not model features (retention, caps, trending decay, CTR prior)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.features.popularity import SEGMENT_HALF_LIFE_S


@dataclass(frozen=True)
class StoreConfig:
    """Retention and scoring parameters of the online store.

    Model features (windows, priors, affinity half-life) come from ``FeatureConfig``; these only
    shape serving-side signals (trending, CTR for exploration) and how long state is kept.
    """

    dedupe_ttl_s: int = 86_400  # how long an event id is remembered: the replay horizon
    history_cap: int = 100  # recent items kept per user (>= FeatureConfig.hist_len)
    impressions_ttl_s: int = 7 * 86_400  # fatigue counts expire after a week without impressions
    arms_ttl_s: int = 90 * 86_400  # remembered experiment arms outlive any experiment
    trending_half_life_s: float = 6 * 3_600.0
    segment_half_life_s: float = SEGMENT_HALF_LIFE_S  # segment popularity's decay (a week)
    # Bounds (issue 12: Redis must not grow with the ids clients send). Every per-user key lives
    # user_ttl_s after the user's last event; counters of items outside the catalog expire;
    # the seen window, trending and each segment's popularity keep their top entries only.
    user_ttl_s: int = 180 * 86_400
    unknown_item_ttl_s: int = 7 * 86_400
    seen_cap: int = 2_000  # most recent items a user interacted with, kept for the seen filter
    # Items pushed out of the seen window go to a compact filter (shared/online_store/
    # seen_filter.py): 16 KiB per user at most, 0.5 % false positives at worst by design.
    seen_filter_blocks: int = 1_024
    seen_filter_hashes: int = 7
    seen_filter_capacity: int = 3_500  # items per generation (two generations)
    trending_cap: int = 10_000
    segment_cap: int = 2_000
    ctr_prior_rate: float = 0.05
    ctr_prior_strength: float = 20.0
    catalog_cache_size: int = 1_000_000  # decoded catalog entries a reader keeps in memory

    def __post_init__(self) -> None:
        # the history is the seen window's most recent part (ingest.lua relies on it)
        if self.seen_cap < self.history_cap:
            raise ValueError(f"seen_cap {self.seen_cap} < history_cap {self.history_cap}")


DEFAULT_STORE_CONFIG = StoreConfig()
