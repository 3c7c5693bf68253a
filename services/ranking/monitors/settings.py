"""Settings of the ranking stage's monitors (a part of the ranking service's settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.monitors.psi import ALERT, WARN


class MonitorSettings(BaseModel):
    """How often requests are sampled, the window, and the served-feature sample log."""

    monitor_sample_every: int = Field(
        default=10, ge=0, le=1_000_000,
        description="count 1 in N ranked requests into the drift window (0: drift off)",
    )  # fmt: skip
    monitor_max_items: int = Field(
        default=64, ge=1, le=10_000,
        description="candidates counted per sampled request (evenly spaced; rows of one "
        "request are alike, so more adds cost, not information)",
    )  # fmt: skip
    monitor_window_s: float = Field(default=1800.0, gt=0, description="sliding window length")
    monitor_slices: int = Field(default=6, ge=1, le=1000, description="slices of the window")
    monitor_min_requests: int = Field(
        default=200, ge=1, description="sampled requests in the window before a PSI is reported"
    )
    monitor_warn: float = Field(default=WARN, gt=0, description="PSI shown as warn from here")
    monitor_alert: float = Field(default=ALERT, gt=0, description="PSI shown as alert from here")
    feature_log_every: int = Field(
        default=100, ge=0, le=1_000_000,
        description="log the served features of 1 in N ranked requests for the skew job (0: off)",
    )  # fmt: skip
    feature_log_items: int = Field(
        default=20, ge=1, le=1000, description="candidates per logged request"
    )
    feature_log_topic: str = Field(default="served_features", min_length=1)
    skew_report: str = Field(
        default="reports/skew/skew.json", description="the skew job's report, shown by /v1/monitors"
    )
