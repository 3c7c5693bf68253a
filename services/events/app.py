"""Events API: validates user events and writes them to Kafka (acks=all, keyed by user_id).

``POST /v1/events`` answers 202 only after the broker acknowledged the whole batch, 422 naming
the bad field and index, or 503 with Retry-After while the broker is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI
from kafka.errors import KafkaError

from services.events.publisher import EventPublisher
from services.events.routes import events
from services.events.settings import Settings
from services.events.validation import BatchValidator
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app
from shared.stream.producer import LazyProducer
from shared.stream.topic_keeper import TopicKeeper


def build_app(settings: Settings) -> Service:
    """The events app; connections open in the lifespan, not at import."""

    async def setup(app: FastAPI, deps: Resources) -> None:
        producer = _producer(settings, deps)
        # Readiness stays false until the broker confirmed the topic; a failed produce makes
        # the keeper check again (a restarted broker may have lost it). ``warm`` loads the
        # topic's partition metadata into the producer so send() never blocks the loop on it.
        topics = TopicKeeper(
            settings.kafka_bootstrap,
            {settings.topic: settings.event_partitions},
            timeout_s=3.0,
            warm=lambda: producer.get().partitions_for(settings.topic),
        )
        deps.readiness.add("topic", topics.check)
        deps.on_close(topics.stop)
        topics.start(settings.topic_retry_s)
        app.state.validator = BatchValidator(
            settings.max_batch, settings.max_future_s, settings.min_timestamp
        )
        app.state.publisher = EventPublisher(
            producer, settings.topic, topics, settings.produce_timeout_s
        )

    app = create_app(settings, setup, description=__doc__ or "")
    app.include_router(events.build_router(settings.min_timestamp))
    return app


def _producer(settings: Settings, deps: Resources) -> LazyProducer:
    """A producer that gives up on a record when the API gives up on it (produce_timeout_s).

    kafka-python would otherwise keep a record queued for 120 s and deliver it long after the
    client was told 503; bounding delivery keeps "503" meaning "most likely not written".
    """
    delivery_ms = int(settings.produce_timeout_s * 1000)
    producer = LazyProducer(
        settings.kafka_bootstrap,
        delivery_timeout_ms=delivery_ms,
        request_timeout_ms=max(delivery_ms - 10, 100),
    )

    async def ready() -> tuple[bool, str]:
        return await asyncio.to_thread(producer.ready)

    async def close() -> None:
        with contextlib.suppress(KafkaError):  # unsent records at shutdown were never 202'd
            await asyncio.to_thread(producer.close)

    deps.readiness.add("kafka", ready)
    deps.on_close(close)
    return producer
