"""The ingest worker's runtime: topic setup and the consumer loop on a background thread."""

from __future__ import annotations

import logging
import socket
import threading

from kafka.errors import KafkaError

from services.ingest.dead_letters import DeadLetterSink
from services.ingest.ingestor import EventIngestor
from services.ingest.settings import Settings
from shared.kafka import ConsumerLoop, LazyProducer, ensure_topics
from shared.online_store.writer import StoreWriter
from shared.redis_client import create_redis

log = logging.getLogger(__name__)


def broker_reachable(bootstrap: str, timeout_s: float = 0.5) -> bool:
    """True when any bootstrap server accepts a TCP connection.

    kafka-python 3.0's ``bootstrap_connected()`` turns False once bootstrapping has finished,
    so it cannot tell a live broker from a dead one; a connect is cheap and unambiguous.
    """
    for server in bootstrap.split(","):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return True
        except OSError:
            continue
    return False


class IngestWorker:
    """Creates the topics, then runs the consumer loop until ``stop()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = LazyProducer(settings.kafka_bootstrap)
        self.redis = create_redis(settings.redis_url)
        writer = StoreWriter(self.redis, store=settings.store_config())
        dlq = DeadLetterSink(self.producer, settings.dlq_topic)
        self.ingestor = EventIngestor(writer, dlq, lag_interval_s=settings.lag_interval_s)
        self.loop = ConsumerLoop(
            settings.kafka_bootstrap,
            [settings.topic],
            settings.group_id,
            self.ingestor,
            max_records=settings.batch_size,
            poll_timeout_ms=settings.poll_timeout_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            consumer_overrides={"check_crcs": settings.check_crcs},
        )
        # The loop measures lag after each committed batch; the handler only publishes it.
        self.ingestor.lag = lambda: self.loop.stats.lag
        self.topics_ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-consumer", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def _run(self) -> None:
        self._create_topics()
        if not self.loop.stopping:
            self.loop.run()

    def _create_topics(self) -> None:
        """Retry until the broker answers: a worker started before the broker waits for it."""
        s = self.settings
        wanted = {s.topic: s.event_partitions, s.dlq_topic: 1}
        while not self.loop.stopping:
            try:
                ensure_topics(s.kafka_bootstrap, wanted, timeout_s=3.0)
                self.topics_ready.set()
                return
            except (KafkaError, OSError) as exc:
                self.loop.stats.last_error = f"kafka unreachable at {s.kafka_bootstrap}: {exc!r}"
                log.warning("cannot create topics", extra={"error": self.loop.stats.last_error})
                self.loop.pause(2.0)

    def ready(self) -> tuple[bool, str]:
        """Readiness of the broker side (Redis has its own check)."""
        if not self.topics_ready.is_set():
            waiting = f"creating topics on kafka at {self.settings.kafka_bootstrap}, no answer yet"
            return False, self.loop.stats.last_error or waiting
        if not self.loop.connected:
            return False, self.loop.stats.last_error or "consumer not started yet"
        if not broker_reachable(self.settings.kafka_bootstrap):
            return False, f"kafka unreachable at {self.settings.kafka_bootstrap}"
        return True, f"ok, {len(self.loop.stats.assigned)} partitions assigned"

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the loop (it commits what it handled), then close the clients."""
        self.loop.stop()
        self._thread.join(timeout_s)
        self.producer.close()
        self.redis.close()
