"""Consumer-group settings shared by every consumer of the events topic."""

from __future__ import annotations

from pydantic import BaseModel

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
