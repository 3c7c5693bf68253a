"""TopicKeeper against a real broker: creates, remembers, re-creates after forget(), reports why."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from deploy.local import infra
from deploy.local.processes import free_port, running
from shared.stream.topic_keeper import TopicKeeper

pytestmark = pytest.mark.integration


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    """An admin client of the session broker, to look behind the keeper's back."""
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap.split(","))
    yield client
    client.close()


def partitions(admin: KafkaAdminClient, topic: str) -> int | None:
    """How many partitions ``topic`` has on the broker; None when it does not exist."""
    if topic not in admin.list_topics():
        return None
    (described,) = admin.describe_topics([topic])
    return len(described["partitions"])


def delete(admin: KafkaAdminClient, topic: str) -> None:
    """Delete ``topic`` (Tansu supports it) and wait until the broker no longer lists it."""
    admin.delete_topics([topic])
    wait_for(lambda: topic not in admin.list_topics(), f"{topic} deleted")


def wait_for(check: Callable[[], object], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_creates_a_missing_topic(
    kafka_bootstrap: str, admin: KafkaAdminClient, unique_topic: str
) -> None:
    keeper = TopicKeeper(kafka_bootstrap, {unique_topic: 3})
    assert partitions(admin, unique_topic) is None
    assert not keeper.status()[0]  # nothing confirmed before the broker was asked

    keeper.ensure()

    assert partitions(admin, unique_topic) == 3
    assert keeper.confirmed and keeper.status() == (True, "ok")


def test_remembers_success_and_asks_again_after_forget(
    kafka_bootstrap: str, admin: KafkaAdminClient, unique_topic: str
) -> None:
    keeper = TopicKeeper(kafka_bootstrap, {unique_topic: 2})
    keeper.ensure()
    delete(admin, unique_topic)  # what a restarted memory-only broker does to it

    keeper.ensure()
    assert partitions(admin, unique_topic) is None, "asked the broker although confirmed"
    assert keeper.status() == (True, "ok")

    keeper.forget("re-checking after a failed send")
    assert keeper.status() == (False, "re-checking after a failed send")
    keeper.ensure()
    assert partitions(admin, unique_topic) == 2
    assert keeper.status() == (True, "ok")


def test_a_forget_while_asking_is_not_lost(kafka_bootstrap: str, unique_topic: str) -> None:
    """An answer asked for before a send failed may predate the loss: it must not confirm."""
    keeper: TopicKeeper
    calls = {"warm": 0}

    def warm() -> None:  # runs after the broker answered, before the keeper remembers it
        calls["warm"] += 1
        if calls["warm"] == 1:
            keeper.forget("a send failed meanwhile")

    keeper = TopicKeeper(kafka_bootstrap, {unique_topic: 1}, warm=warm)
    keeper.ensure()
    assert keeper.status() == (False, "a send failed meanwhile")
    keeper.ensure()
    assert keeper.status() == (True, "ok") and calls["warm"] == 2


def test_reports_not_ready_with_the_reason_while_the_broker_is_down(unique_topic: str) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # nobody listens there
    keeper = TopicKeeper(bootstrap, {unique_topic: 1}, timeout_s=1.0)
    with pytest.raises(KafkaError):
        keeper.ensure()
    ok, reason = keeper.status()
    assert not ok
    assert f"cannot ensure topics ['{unique_topic}'] on kafka at {bootstrap}" in reason
    assert asyncio.run(keeper.check()) == (False, reason)  # the readiness form says the same

    stop = threading.Event()
    attempts = {"n": 0}

    def pause(seconds: float) -> bool:  # a worker's pause: told to stop after two retries
        attempts["n"] += 1
        return attempts["n"] >= 2 or stop.wait(seconds)

    assert keeper.wait(0.01, pause) is False and attempts["n"] == 2


def test_wait_retries_until_the_broker_comes_up(tmp_path: Path, unique_topic: str) -> None:
    """A worker started before its broker: ``wait()`` keeps trying and then succeeds."""
    port = free_port()
    keeper = TopicKeeper(f"127.0.0.1:{port}", {unique_topic: 2}, timeout_s=1.0)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(keeper.wait(0.2)), daemon=True)
    thread.start()
    time.sleep(1.0)
    assert not result and not keeper.status()[0]
    with running(infra.tansu_spec(port), tmp_path):
        thread.join(30)
        assert result == [True] and keeper.status() == (True, "ok")
        admin = KafkaAdminClient(bootstrap_servers=[f"127.0.0.1:{port}"])
        try:
            assert partitions(admin, unique_topic) == 2
        finally:
            admin.close()


async def test_background_task_recreates_the_topic_after_forget(
    kafka_bootstrap: str, admin: KafkaAdminClient, unique_topic: str
) -> None:
    """The events API's shape: start(), readiness from check(), forget() after a failed send."""
    warmed = threading.Event()
    keeper = TopicKeeper(kafka_bootstrap, {unique_topic: 2}, warm=warmed.set)
    keeper.start(retry_s=0.1)
    try:
        await _until(lambda: keeper.confirmed, "first confirmation")
        assert warmed.is_set() and await keeper.check() == (True, "ok")

        await asyncio.to_thread(delete, admin, unique_topic)
        warmed.clear()
        keeper.forget()  # from the event loop, as the publisher does
        await _until(lambda: keeper.confirmed, "re-confirmation")
        assert await asyncio.to_thread(partitions, admin, unique_topic) == 2
        assert warmed.is_set()

        await asyncio.to_thread(delete, admin, unique_topic)
        # ...and from another thread, as kafka-python's I/O thread does for the served log.
        await asyncio.to_thread(keeper.forget)
        await _until(lambda: keeper.confirmed, "re-confirmation from a thread")
        assert await asyncio.to_thread(partitions, admin, unique_topic) == 2
    finally:
        await keeper.stop()


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
