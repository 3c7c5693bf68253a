"""The ingest worker's runtime: store writer, dead letters and the consumer loop on a thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import redis
from kafka.errors import KafkaError

from services.ingest.ingestor import EventIngestor
from services.ingest.metrics import CONSUMER_LAG
from services.ingest.settings import Settings
from shared.online_store.writer import StoreWriter
from shared.platform.redis_client import create_redis
from shared.stream.consumer_loop import ConsumerLoop, lag_value
from shared.stream.consumer_worker import ConsumerWorker
from shared.stream.dead_letters import DeadLetterWriter

# Errors of Redis or the broker themselves, never of a record: retried, never dead-lettered.
TRANSIENT = (
    OSError,
    KafkaError,
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ClusterError,  # CLUSTERDOWN, slots moving: the cluster heals or is healed
    redis.exceptions.RedisClusterException,  # no node of the cluster reachable
)


class IngestWorker:
    """Creates the topics, then applies the events topic to Redis until ``stop()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = create_redis(settings.redis_url, cluster=settings.redis_cluster)
        self.dead_letters = DeadLetterWriter(
            settings.kafka_bootstrap, settings.dlq_topic, settings.group_id, settings.dlq_timeout_s
        )
        writer = StoreWriter(self.redis, store=settings.store_config())
        self.writer_pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write")
            if settings.overlap_writes
            else None
        )
        self.ingestor = EventIngestor(
            writer, self.dead_letters, settings.max_future_s, self.writer_pool
        )
        self.loop = ConsumerLoop(
            settings.kafka_bootstrap,
            [settings.topic],
            settings.group_id,
            self.ingestor,
            max_records=settings.batch_size,
            poll_timeout_ms=settings.poll_timeout_ms,
            lag_interval_s=settings.lag_interval_s,
            consumer_overrides={
                "check_crcs": settings.check_crcs,
                "fetch_max_wait_ms": settings.fetch_max_wait_ms,
            },
            dead_letters=self.dead_letters,
            transient=TRANSIENT,
            **settings.loop_options(),
        )
        CONSUMER_LAG.set_function(lambda: lag_value(self.loop))
        topics = {settings.topic: settings.event_partitions, settings.dlq_topic: 1}
        self.worker = ConsumerWorker(self.loop, topics, name="ingest-consumer")

    def start(self) -> None:
        """Start the background thread."""
        self.worker.start()

    def ready(self) -> tuple[bool, str]:
        """Readiness of the broker side (Redis has its own check)."""
        return self.worker.ready()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the loop (it commits what it handled), then close the clients."""
        self.worker.stop(timeout_s)  # the loop settles the write in flight before it returns
        if self.writer_pool is not None:
            self.writer_pool.shutdown(wait=True)
        self.dead_letters.close()
        self.redis.close()
