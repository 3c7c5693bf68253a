"""Consumer-group settings shared by every consumer of the events topic."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.platform.settings import platform


class ConsumerGroupSettings(BaseModel):
    """Settings of a consumer of the events topic.

    The group timings are also read platform-wide as ``CASCADE_KAFKA_<NAME>``: every consumer
    of a Tansu broker wants the short values (it joins a group in about half the session
    timeout), while real Kafka keeps the defaults. The partition count is platform-wide so the
    events API and every consumer create the topic alike.
    """

    session_timeout_ms: int = platform(10_000, env="KAFKA_SESSION_TIMEOUT_MS", ge=1000, le=300_000)
    heartbeat_interval_ms: int = platform(
        3000, env="KAFKA_HEARTBEAT_INTERVAL_MS", ge=100, le=100_000
    )
    event_partitions: int = platform(
        6, ge=1, le=1024, description="partitions of the events topic when it is created"
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="retries of a batch failing in its handler before its poison records are "
        "found (by halving the batch) and dead-lettered; connection errors retry forever",
    )
    retry_backoff_s: float = Field(default=0.5, gt=0, le=60, description="pause before a retry")
    stuck_after: int = Field(
        default=5, ge=1, le=100_000, description="failures in a row after which /readyz fails"
    )

    def loop_options(self) -> dict[str, Any]:
        """The :class:`~shared.stream.consumer_loop.ConsumerLoop` options these settings set."""
        return {
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "max_retries": self.max_retries,
            "retry_backoff_s": self.retry_backoff_s,
            "stuck_after": self.stuck_after,
        }
