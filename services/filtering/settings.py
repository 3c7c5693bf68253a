"""Settings of the filtering service (environment prefix CASCADE_FILTERING_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Removes seen, restricted, blocked and duplicate candidates.

    Pure compute: the gateway sends the user's seen/blocked sets and the items' restriction
    columns it already read, so this service needs no Redis connection of its own.
    """

    model_config = SettingsConfigDict(env_prefix="CASCADE_FILTERING_", populate_by_name=True)

    service_name: str = "filtering"
    port: int = Field(default=8004, ge=1, le=65535)
    disabled_filters: str = Field(default="", description="comma-separated kill switches")

    def disabled(self) -> frozenset[str]:
        """Names of switched-off filters."""
        return frozenset(s.strip() for s in self.disabled_filters.split(",") if s.strip())
