"""ExposureLog against the session's real broker: the join, a restart's rebuild, a dead broker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from deploy.local import infra, processes
from deploy.local.processes import free_port
from services.rollouts.exposure import ExposureLog, ExposureSettings, UnitArrays
from shared.events import Event, encode_event
from shared.stream.producer import create_producer
from shared.stream.topic_keeper import ensure_topics

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

Totals = dict[str, tuple[int, int, int, int, float, int]]


def _settings(bootstrap: str, base: str) -> ExposureSettings:
    return ExposureSettings(
        kafka_bootstrap=bootstrap,
        served_topic=f"{base}-served",
        events_topic=f"{base}-events",
        exposure_check_interval_s=0.2,
        exposure_poll_timeout_ms=100,
    )


@pytest.fixture
def settings(kafka_bootstrap: str, unique_topic: str) -> ExposureSettings:
    """Fresh served and events topics of 3 partitions each (keyed by user, as in production)."""
    cfg = _settings(kafka_bootstrap, unique_topic)
    ensure_topics(kafka_bootstrap, {cfg.served_topic: 3, cfg.events_topic: 3})
    return cfg


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    """An acks=all producer, closed after the test."""
    prod = create_producer(kafka_bootstrap)
    yield prod
    prod.close(timeout=5)


class Traffic:
    """Writes served records and events as the gateway and the events API do."""

    def __init__(self, producer: KafkaProducer, settings: ExposureSettings) -> None:
        self.producer = producer
        self.settings = settings

    def served(
        self,
        rid: str,
        user: str,
        arms: dict[str, str],
        ts: float | None = None,
        failure: str | None = None,
    ) -> None:
        ts = time.time() if ts is None else ts
        record = {
            "request_id": rid,
            "user_id": user,
            "ts": ts,
            "variant": "v",
            "arms": arms,
            "canary_failure": failure,
            "item_ids": ["i0", "i1", "i2"],
            "scores": [0.3, 0.2, 0.1],
            "propensity": [1.0, 1.0, 1.0],
            "explored": [False] * 3,
            "cold_start": "returning",
            "degraded": [],
            "model_versions": {"ranker": "cascade-ranker/1"},
        }
        self._send(self.settings.served_topic, user, orjson.dumps(record), ts)

    def event(
        self,
        eid: str,
        user: str,
        rid: str | None,
        type: str = "impression",
        value: float | None = None,
        ts: float | None = None,
    ) -> None:
        ts = time.time() if ts is None else ts
        body = {
            "event_id": eid,
            "user_id": user,
            "item_id": "i0",
            "type": type,
            "value": value,
            "timestamp": ts,
            "request_id": rid,
            "position": 0,
        }
        value_bytes = encode_event(Event.model_validate(body), accepted_ts=ts)
        self._send(self.settings.events_topic, user, value_bytes, ts)

    def _send(self, topic: str, user: str, value: bytes, ts: float) -> None:
        self.producer.send(topic, key=user.encode(), value=value, timestamp_ms=int(ts * 1000))

    def flush(self) -> None:
        self.producer.flush(timeout=10)


def totals(units: UnitArrays) -> Totals:
    """user -> (requests, impressions, clicks, likes, watch_s, canary_failures)."""
    return units.per_user()


def snapshot(exposure: ExposureLog, rollout: str) -> dict[str, Any]:
    """Everything the controller reads of a rollout."""
    return {
        "units": {
            arm: totals(exposure.arm_units(rollout, arm)) for arm in ("production", "canary")
        },
        "users": exposure.distinct_users(rollout),
        "requests": exposure.requests(rollout),
    }


async def until(check: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    """Wait (without blocking the loop) until ``check()`` holds; False if it never did."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def why(exposure: ExposureLog, rollout: str) -> tuple[Any, ...]:
    """What a failed wait shows: health, where every record went, lag."""
    return exposure.healthy(), exposure.counts(rollout), exposure.lag()


async def settle(exposure: ExposureLog, rollout: str, expected: dict[str, Any]) -> None:
    """Wait until the rollout's numbers reach ``expected``, then compare (a readable diff)."""
    await until(lambda: exposure.caught_up(rollout) and snapshot(exposure, rollout) == expected)
    assert snapshot(exposure, rollout) == expected, why(exposure, rollout)


EXPECTED_RA = {
    "units": {
        "canary": {"u1": (2, 4, 2, 1, 30.0, 0)},
        "production": {"u2": (1, 2, 1, 0, 12.5, 0), "u5": (1, 1, 0, 0, 0.0, 0)},
    },
    "users": {"canary": 1, "production": 2},
    "requests": {"canary": 2, "production": 2},
}
EXPECTED_RB = {
    "units": {
        "production": {"u1": (1, 2, 1, 1, 30.0, 0)},
        "canary": {"u2": (1, 2, 1, 0, 12.5, 1), "u3": (1, 1, 0, 0, 0.0, 0)},
    },
    "users": {"production": 1, "canary": 2},
    "requests": {"production": 1, "canary": 2},
}


async def test_join_by_rollout_arm_and_user_survives_a_restart(
    settings: ExposureSettings, producer: KafkaProducer
) -> None:
    traffic = Traffic(producer, settings)
    since = time.time() - 60
    old = since - 300  # a previous step's traffic: must not count
    traffic.served("q0", "u1", {"ra": "canary"}, ts=old)
    traffic.event("q0:0:i", "u1", "q0", ts=old)
    traffic.event("q0:0:c", "u1", "q0", "click", ts=old)
    traffic.flush()

    exposure = ExposureLog(settings)
    exposure.start("ra", since)
    exposure.start("rb", since)
    assert await until(lambda: exposure.healthy()[0])

    # Events first: their served records are not on the topic yet, so they wait.
    for eid, rid, kind in [
        ("q1:0:i", "q1", "impression"),
        ("q1:1:i", "q1", "impression"),
        ("q1:0:c", "q1", "click"),
        ("q2:0:i", "q2", "impression"),
    ]:
        traffic.event(eid, "u1", rid, kind)
    traffic.flush()
    waiting = lambda rollout: exposure.counts(rollout)["pending_events"]["now"]  # noqa: E731
    assert await until(lambda: waiting("ra") == 4 and waiting("rb") == 4), why(exposure, "rb")

    traffic.served("q1", "u1", {"ra": "canary", "rb": "production"})
    traffic.served("q2", "u1", {"ra": "canary"})
    traffic.served("q3", "u2", {"ra": "production", "rb": "canary"}, failure="ranker: timeout")
    traffic.served("q4", "u3", {"rb": "canary"})
    traffic.served("q5", "u4", {})  # no rollout in force
    traffic.served("q6", "u5", {"ra": "production"})
    # Events after their served record, duplicates and one without request id.
    traffic.event("q1:0:w", "u1", "q1", "watch", value=30.0)
    traffic.event("q1:0:l", "u1", "q1", "like")
    traffic.event("q1:0:c", "u1", "q1", "click")  # duplicate of an event that waited
    traffic.event("q2:1:i", "u1", "q2")
    traffic.event("q2:1:c", "u1", "q2", "click")
    for eid, kind, value in [
        ("q3:0:i", "impression", None),
        ("q3:1:i", "impression", None),
        ("q3:1:c", "click", None),
        ("q3:1:w", "watch", 12.5),
    ]:
        traffic.event(eid, "u2", "q3", kind, value)
    traffic.event("q4:0:i", "u3", "q4")
    traffic.event("q5:0:i", "u4", "q5")
    traffic.event("q6:0:i", "u5", "q6")
    traffic.event("q6:0:i", "u5", "q6")  # duplicate
    traffic.event("free-click", "u1", None, "click")
    traffic.flush()

    await settle(exposure, "ra", EXPECTED_RA)
    await settle(exposure, "rb", EXPECTED_RB)
    events_ra = exposure.counts("ra")["events"]
    # before_start: the old step's events, when the broker's time index does not skip them.
    assert events_ra.pop("before_start", 0) <= 2
    assert events_ra == {"joined": 13, "duplicate": 2, "outside_rollout": 2, "no_request_id": 1}
    assert exposure.counts("rb")["events"]["outside_rollout"] == 5
    assert exposure.healthy() == (True, "ok")
    lag = exposure.lag()
    assert lag[settings.served_topic].lag == 0 and lag[settings.events_topic].caught_up
    assert lag[settings.events_topic].last_message_ts == pytest.approx(time.time(), abs=30)
    await asyncio.to_thread(exposure.close)

    # A restarted controller: a new instance rebuilds both rollouts from since_ts.
    restarted = ExposureLog(settings)
    restarted.start("ra", since)
    restarted.start("rb", since)
    await settle(restarted, "ra", EXPECTED_RA)
    await settle(restarted, "rb", EXPECTED_RB)

    # A new step: tracking ra from now resets it to what happens from now on.
    await asyncio.sleep(0.01)
    restarted.start("ra", time.time())
    assert snapshot(restarted, "ra")["requests"] == {"production": 0, "canary": 0}
    assert await until(lambda: restarted.caught_up("ra"))
    traffic.served("q7", "u1", {"ra": "canary"})
    traffic.event("q7:0:i", "u1", "q7")
    traffic.flush()
    step2 = {
        "units": {"production": {}, "canary": {"u1": (1, 1, 0, 0, 0.0, 0)}},
        "users": {"production": 0, "canary": 1},
        "requests": {"production": 0, "canary": 1},
    }
    await settle(restarted, "ra", step2)
    assert snapshot(restarted, "rb") == EXPECTED_RB
    restarted.stop("ra")
    with pytest.raises(KeyError):
        restarted.arm_units("ra", "canary")
    await asyncio.to_thread(restarted.close)


async def test_rebuild_reads_thousands_of_messages_a_second(
    settings: ExposureSettings, producer: KafkaProducer
) -> None:
    traffic = Traffic(producer, settings)
    since = time.time() - 60
    n_requests, events_per_request = 2000, 3
    for r in range(n_requests):
        user = f"u{r % 200}"
        traffic.served(f"q{r}", user, {"ra": "canary" if r % 2 else "production"})
        for pos in range(events_per_request):
            traffic.event(f"q{r}:{pos}:i", user, f"q{r}")
    traffic.flush()
    messages = n_requests * (1 + events_per_request)

    exposure = ExposureLog(settings)
    started = time.perf_counter()
    exposure.start("ra", since)
    assert await until(
        lambda: exposure.caught_up("ra") and sum(exposure.requests("ra").values()) == n_requests
    )
    elapsed = time.perf_counter() - started
    rate = messages / elapsed
    log.info("exposure rebuild: %d messages in %.2f s (%.0f msgs/s)", messages, elapsed, rate)
    units = exposure.arm_units("ra", "canary")
    assert int(units.impressions.sum()) == n_requests // 2 * events_per_request
    assert exposure.counts("ra")["events"] == {"joined": n_requests * events_per_request}
    # A loose floor (2 shared cores): catches a rebuild gone quadratic, not a slow machine.
    assert rate > 1500, f"{rate:.0f} msgs/s"
    await asyncio.to_thread(exposure.close)


async def test_a_stopped_broker_is_unhealthy_with_the_reason_and_a_restart_recovers(
    tmp_path: Path, unique_topic: str
) -> None:
    spec = infra.tansu_spec(free_port())  # a private broker: stopping it spares other tests
    settings = _settings(spec.url, unique_topic)
    layout = {settings.served_topic: 1, settings.events_topic: 1}
    broker = processes.start(spec, tmp_path / "logs")
    exposure = ExposureLog(settings)
    try:
        processes.wait_ready(broker)
        ensure_topics(spec.url, layout)
        exposure.start("ra", time.time() - 60)
        with create_producer(spec.url) as prod:
            traffic = Traffic(prod, settings)
            traffic.served("q1", "u1", {"ra": "canary"})
            traffic.flush()
        assert await until(lambda: exposure.requests("ra")["canary"] == 1), why(exposure, "ra")
        assert exposure.healthy() == (True, "ok")

        processes.stop(broker, timeout_s=0.2)  # a crash (a graceful stop takes Tansu ~5 s)
        assert await until(lambda: not exposure.healthy()[0], timeout_s=10)
        assert exposure.healthy() == (False, f"ra: kafka unreachable at {spec.url}")

        # Back on the same port with nothing (memory storage): hold until the topics exist,
        # then count the new log from its start; what was counted before stays.
        broker = processes.start(spec, tmp_path / "logs")
        processes.wait_ready(broker)
        assert await until(lambda: "missing" in exposure.healthy()[1], timeout_s=10)
        ensure_topics(spec.url, layout)
        with create_producer(spec.url) as prod:
            traffic = Traffic(prod, settings)
            traffic.served("q2", "u1", {"ra": "canary"})
            traffic.flush()
        assert await until(lambda: exposure.requests("ra")["canary"] == 2, timeout_s=10), why(
            exposure, "ra"
        )
        assert exposure.healthy() == (True, "ok")
    finally:
        await asyncio.to_thread(exposure.close)
        processes.stop(broker, timeout_s=0.2)


async def test_a_wrong_address_or_a_missing_topic_is_unhealthy(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    exposure = ExposureLog(_settings("127.0.0.1:1", unique_topic))
    assert exposure.healthy() == (True, "no rollout tracked")
    exposure.start("ra", time.time())
    assert await until(lambda: "unreachable" in exposure.healthy()[1], timeout_s=10)
    assert exposure.healthy() == (False, "ra: kafka unreachable at 127.0.0.1:1")
    await asyncio.to_thread(exposure.close)

    missing = ExposureLog(_settings(kafka_bootstrap, unique_topic))  # topics never created
    missing.start("ra", time.time())
    assert await until(lambda: "missing" in missing.healthy()[1], timeout_s=10)
    assert not missing.healthy()[0]
    await asyncio.to_thread(missing.close)
