"""Settings of the filtering service (environment prefix CASCADE_FILTERING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.platform.settings import ServiceSettings, platform


class Settings(ServiceSettings):
    """Removes restricted, blocked, seen and duplicate candidates.

    Pure compute: the gateway sends the columns the filters need (restrictions, and the
    user's seen and blocked marks per candidate), so this service holds no connection.
    """

    model_config = SettingsConfigDict(env_prefix="CASCADE_FILTERING_", populate_by_name=True)

    service_name: str = "filtering"
    port: int = Field(default=8004, ge=1, le=65535)
    disabled_filters: str = Field(default="", description="comma-separated kill switches")
    plugins: str = platform("", description="extra components, module:Class,...")

    def disabled(self) -> frozenset[str]:
        """Names of switched-off filters."""
        return frozenset(s.strip() for s in self.disabled_filters.split(",") if s.strip())
