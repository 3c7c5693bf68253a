"""Every tunable of the traffic simulator: typed, bounded, with its default, in one place.

Environment variables override them: ``CASCADE_SIMULATOR_SEED=7``,
``CASCADE_SIMULATOR_BEHAVIOUR__POSITION_ETA=0.7`` (nested groups joined by ``__``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class GroundTruthSettings(BaseModel):
    """How the hidden preferences are fit, and how they become probabilities."""

    model_config = _FROZEN

    # The fit (part of the cache key).
    fit_on: Literal["all", "heldout"] = Field(
        "all", description="all ratings, or only those from the validation cut-off on"
    )
    ease_lambda: float = Field(300.0, gt=0, le=1e5, description="EASE L2 weight (interest)")
    rating_rank: int = Field(10, ge=0, le=200, description="SVD rank of the rating residuals")
    bias_reg: float = Field(5.0, ge=0, le=1e3, description="shrinkage of user and item biases")
    # Calibration of a click: logit P = logit(ctr_at_median) + click_slope * z, z the item's
    # normal score in the user's own ranking of the catalogue (0 = their median item).
    ctr_at_median: float = Field(0.02, gt=0, lt=1, description="P(click | examined) at z = 0")
    click_slope: float = Field(1.0, ge=0, le=5, description="logit change per unit of z")
    # Like given a click: logit P = logit(like_at_4) + like_slope * (predicted rating - 4).
    like_at_4: float = Field(0.3, gt=0, lt=1, description="P(like | click) at a predicted 4")
    like_slope: float = Field(1.5, ge=0, le=10)
    # Dwell given a click: log-normal, median watch_median_s * exp(slope * (rating - 3.5)).
    watch_median_s: float = Field(900.0, gt=0, le=86_400)
    watch_rating_slope: float = Field(0.5, ge=0, le=5)
    watch_sigma: float = Field(0.8, ge=0, le=5, description="sigma of log dwell")
    watch_max_s: float = Field(10_800.0, gt=0, le=86_400, description="dwell is capped here")
    # Hide of an examined, unclicked item: logit P = logit(hide_at_median) - hide_slope * z.
    hide_at_median: float = Field(0.01, ge=0, lt=1)
    hide_slope: float = Field(1.0, ge=0, le=5)
    # Priors.
    unknown_item_z: float = Field(0.0, ge=-4, le=4, description="z of an item not in MovieLens")
    new_user_taste: Literal["population", "persona"] = Field(
        "population",
        description="population: the average user's ranking; persona: a MovieLens user's "
        "ranking chosen by a hash of the id",
    )


class BehaviourSettings(BaseModel):
    """The examination model and the client's timing."""

    model_config = _FROZEN

    position_eta: float = Field(1.0, ge=0, le=5, description="P(examine p) = 1/(1+p)^eta")
    scan_s: float = Field(0.8, ge=0, le=60, description="seconds per position read")
    watch_report_s: float = Field(1.0, ge=0, le=60, description="watch event after its click")
    like_after_s: float = Field(2.0, ge=0, le=60, description="like event after its click")


class PopulationSettings(BaseModel):
    """Who arrives, and how long they stay."""

    model_config = _FROZEN

    new_user_share: float = Field(0.1, ge=0, le=1, description="share of sessions by new users")
    new_user_prefix: str = Field("sim-new-", pattern=r"^[A-Za-z0-9_.:-]{1,40}$")
    activity_exponent: float = Field(
        0.5, ge=0, le=2, description="returning users drawn with weight n_ratings ** this"
    )
    session_mean_requests: float = Field(3.0, ge=1, le=100, description="geometric length")
    session_max_requests: int = Field(10, ge=1, le=1000)
    think_s: float = Field(2.0, ge=0, le=600, description="pause between a session's requests")


class DriverSettings(BaseModel):
    """The HTTP side: list length, forced variant, event batching and retries."""

    model_config = _FROZEN

    k: int = Field(10, ge=1, le=100)
    variant: str | None = Field(None, description="force ?variant= on every request (tests)")
    batch_size: int = Field(200, ge=1, le=1000, description="events per POST /v1/events")
    flush_interval_s: float = Field(0.5, gt=0, le=60, description="post a partial batch after")
    timeout_s: float = Field(10.0, gt=0, le=300)
    post_retries: int = Field(3, ge=0, le=20, description="re-posts of a batch after a 503")
    max_retry_wait_s: float = Field(2.0, ge=0, le=60, description="cap on Retry-After")
    max_connections: int = Field(256, ge=1, le=4096)


class SimulatorSettings(BaseSettings):
    """All of the simulator's settings (environment prefix ``CASCADE_SIMULATOR_``)."""

    model_config = SettingsConfigDict(
        env_prefix="CASCADE_SIMULATOR_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    seed: int = Field(1, ge=0, description="one seed for the population and every draw")
    data_dir: Path = Path("data/ml-100k")
    cache_dir: Path = Path(".cache/simulator")
    truth: GroundTruthSettings = GroundTruthSettings()
    behaviour: BehaviourSettings = BehaviourSettings()
    population: PopulationSettings = PopulationSettings()
    driver: DriverSettings = DriverSettings()
