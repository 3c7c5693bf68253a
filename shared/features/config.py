"""Sizes and constants of the feature set; written into feature_schema.json with each model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Bump when a feature's definition changes: models trained on another version are rejected.
FEATURE_VERSION = "1"


@dataclass(frozen=True)
class FeatureConfig:
    """Bucket counts, sequence length and priors that fix the encoders' output."""

    user_id_buckets: int = 50_000
    item_id_buckets: int = 20_000
    profile_buckets: int = 4_096
    n_id_hashes: int = 2
    hist_len: int = 50
    affinity_half_life_s: float = 30 * 86_400.0
    like_threshold: float = 4.0
    like_prior_rate: float = 0.55
    like_prior_strength: float = 10.0
    rating_prior_mean: float = 3.53
    rating_prior_strength: float = 5.0
    windows: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"1h": (3_600, 60), "24h": (86_400, 3_600), "7d": (604_800, 3_600)}
    )
    version: str = FEATURE_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d = asdict(self)
        d["windows"] = {k: list(v) for k, v in self.windows.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored for forward compatibility."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "windows" in known:
            known["windows"] = {k: (int(v[0]), int(v[1])) for k, v in known["windows"].items()}
        return cls(**known)


DEFAULT_CONFIG = FeatureConfig()
