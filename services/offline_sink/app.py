"""Offline sink: consumes ``events`` (group ``offline-sink``) into date-partitioned Parquet.

Offsets are committed only after the Parquet file is fsynced and atomically renamed, so a crash
never loses an accepted event (it may write one twice; the DuckDB ``events`` view dedupes by
event_id). Malformed messages go to ``events.dlq`` with the reason, and so does a record the
Parquet write keeps failing on (after the bounded retries), while the rest is written.
A full disk (below ``min_free_mb``, or ENOSPC mid-write) is a dependency failure, not a bad
record: nothing is committed, the events wait in the broker, readiness says "disk full" and the
sink resumes by itself once space is back.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.offline_sink.metrics import CONSUMER_LAG, DISK_FREE
from services.offline_sink.settings import Settings
from services.offline_sink.sink import OfflineSink
from shared.offline_store.writer import DiskFullError, ParquetEventWriter
from shared.platform.resources import Resources
from shared.platform.service import Service, create_app
from shared.stream.consumer_loop import ConsumerLoop, lag_value
from shared.stream.consumer_worker import ConsumerWorker
from shared.stream.dead_letters import DeadLetterWriter


def build_worker(
    settings: Settings,
) -> tuple[ConsumerWorker, DeadLetterWriter, ParquetEventWriter]:
    """The sink pipeline: consumer loop → OfflineSink (Parquet writer + dead letters)."""
    dead_letters = DeadLetterWriter(
        settings.kafka_bootstrap, settings.dlq_topic, settings.group_id, settings.dlq_timeout_s
    )
    writer = ParquetEventWriter(settings.data_dir, min_free_bytes=int(settings.min_free_mb * 2**20))
    sink = OfflineSink(writer, dead_letters, settings.max_future_s)
    loop = ConsumerLoop(
        settings.kafka_bootstrap,
        [settings.topic],
        settings.group_id,
        sink.handle,
        max_records=settings.max_poll_records,
        flush_records=settings.flush_events,
        flush_interval_s=settings.flush_interval_s,
        dead_letters=dead_letters,
        **settings.loop_options(),
    )
    CONSUMER_LAG.set_function(lambda: lag_value(loop))
    DISK_FREE.set_function(writer.free_bytes)
    topics = {settings.topic: settings.event_partitions, settings.dlq_topic: 1}
    return ConsumerWorker(loop, topics, name="offline-sink"), dead_letters, writer


def build_app(settings: Settings) -> Service:
    """The sink's HTTP shell (/healthz, /readyz, /metrics) around the background worker."""

    async def setup(app: FastAPI, deps: Resources) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        worker, dead_letters, writer = build_worker(settings)

        async def ready() -> tuple[bool, str]:
            return await asyncio.to_thread(worker.ready)  # it opens a TCP connection

        async def disk() -> tuple[bool, str]:
            try:
                await asyncio.to_thread(writer.check_space)
            except DiskFullError as exc:
                return False, str(exc.strerror)
            return True, f"ok, {writer.free_bytes() / 2**20:.0f} MiB free"

        async def stop() -> None:
            await asyncio.to_thread(worker.stop)
            await asyncio.to_thread(dead_letters.close)

        deps.readiness.add("consumer", ready)
        deps.readiness.add("disk", disk)
        deps.on_close(stop)
        worker.start()
        app.state.worker = worker

    return create_app(settings, setup, description=__doc__ or "")
