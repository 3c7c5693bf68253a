"""Ingest benchmark: events/s one worker applies to Redis, and freshness at half that rate.

Runs against real servers: a Redis and a Tansu broker (started here unless URLs are given) and
one ``python -m services.ingest`` process. Phase 1 pre-loads N events on a fresh topic and times
how fast the worker drains it (group join excluded). Phase 2 produces at a fixed rate with the
events API's ``accepted_ts`` stamp and reads the worker's freshness histogram (acceptance → the
batch's Redis write returned). Prints a table and returns a dict.

    python -m loadtests.bench_ingest [--events 200000] [--rate 10000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import KafkaProducer

from deploy.local import infra
from deploy.local.processes import free_port
from shared.features.item import GENRES
from shared.kafka import ensure_topics
from shared.online_store import ItemRecord
from shared.online_store.writer import StoreWriter
from tests.utils.servers import running, service_spec

N_ITEMS, N_USERS = 1682, 5000
MIX = {"impression": 60, "click": 25, "watch": 8, "like": 4, "rate": 2, "hide": 1}
TYPES = [t for t, share in MIX.items() for _ in range(share)]
_SAMPLE = re.compile(rb"^(cascade_\w+?)(\{[^}]*\})? ([0-9.e+-]+)$", re.M)


def _events(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """A realistic mix: mostly impressions, skewed item popularity, 5,000 users."""
    rng = random.Random(seed)
    now = time.time()
    for k in range(n):
        kind = rng.choice(TYPES)
        yield {
            "event_id": f"{seed}-{k}",
            "user_id": str(rng.randrange(N_USERS)),
            "item_id": str(int(rng.paretovariate(1.2)) % N_ITEMS),
            "type": kind,
            "value": float(rng.randint(1, 5)) if kind == "rate" else None,
            "timestamp": now - rng.random() * 600,
        }


def _produce(producer: KafkaProducer, topic: str, event: dict[str, Any]) -> None:
    event["accepted_ts"] = time.time()
    body = {k: v for k, v in event.items() if v is not None}
    producer.send(topic, key=event["user_id"].encode(), value=orjson.dumps(body))


def _metrics(base: str) -> dict[str, float]:
    """Sum of each metric sample by name+labels from the worker's /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=2) as resp:  # noqa: S310
        text = resp.read()
    return {(m[1] + (m[2] or b"")).decode(): float(m[3]) for m in _SAMPLE.finditer(text)}


def _applied(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("cascade_ingest_events_total{"))


def _quantile(before: dict[str, float], after: dict[str, float], q: float) -> float:
    """histogram_quantile over the freshness buckets observed between two scrapes."""
    name = "cascade_feature_freshness_seconds_bucket"
    buckets: list[tuple[float, float]] = []
    for key, value in after.items():
        if key.startswith(name):
            label = key.split('le="')[1].rstrip('"}')
            bound = float("inf") if label == "+Inf" else float(label)
            buckets.append((bound, value - before.get(key, 0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return float("nan")
    rank, prev_le, prev_n = q * total, 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return prev_le


def _wait_applied(base: str, target: float, timeout_s: float) -> tuple[float, float, float]:
    """Poll until ``target`` events are applied: (t_first_progress, count_then, t_done)."""
    deadline = time.monotonic() + timeout_s
    t_first = count_first = None
    while time.monotonic() < deadline:
        n = _applied(_metrics(base))
        now = time.monotonic()
        if t_first is None and n > 0:
            t_first, count_first = now, n
        if n >= target:
            return t_first or now, count_first or 0.0, now
        time.sleep(0.05)
    raise TimeoutError(f"worker applied fewer than {target:.0f} events in {timeout_s}s")


def _load_catalog(redis_url: str) -> None:
    rng = random.Random(7)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    StoreWriter(client).put_items(
        [ItemRecord(str(i), genres=tuple(rng.sample(GENRES, 2))) for i in range(N_ITEMS)]
    )
    client.close()


def _preload(producer: KafkaProducer, topic: str, n: int) -> None:
    """Put the whole backlog on the topic before the worker starts (so it is not paced)."""
    for ev in _events(n, seed=1):
        _produce(producer, topic, ev)
    producer.flush()


def _throughput(base: str, n: int) -> dict[str, float]:
    t_first, n_first, t_done = _wait_applied(base, n, timeout_s=120 + n / 2000)
    rate = (n - n_first) / max(t_done - t_first, 1e-9)
    return {"events": n, "drain_s": round(t_done - t_first, 2), "events_per_s": round(rate)}


def _freshness(
    base: str, producer: KafkaProducer, topic: str, rate: int, seconds: float, already: float
) -> dict[str, float]:
    before = _metrics(base)
    n = int(rate * seconds)
    start = time.monotonic()
    for k, ev in enumerate(_events(n, seed=2)):
        due = start + k / rate
        while time.monotonic() < due:  # pace the producer; sleep only in coarse steps
            time.sleep(max(0.0, min(0.005, due - time.monotonic())))
        _produce(producer, topic, ev)
    producer.flush()
    achieved = n / (time.monotonic() - start)
    _wait_applied(base, already + n, timeout_s=60)
    after = _metrics(base)
    return {
        "rate": rate,
        "achieved_rate": round(achieved),
        "freshness_p50_s": round(_quantile(before, after, 0.50), 4),
        "freshness_p99_s": round(_quantile(before, after, 0.99), 4),
    }


@contextmanager
def _servers(redis_url: str | None, bootstrap: str | None) -> Iterator[tuple[str, str, Path]]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ingest-")))
        if redis_url is None:
            spec = infra.redis_spec(free_port(), tmp / "redis")
            stack.enter_context(running(spec, tmp / "logs"))
            redis_url = spec.url
        if bootstrap is None:
            spec = infra.tansu_spec(free_port())
            stack.enter_context(running(spec, tmp / "logs"))
            bootstrap = spec.url
        yield redis_url, bootstrap, tmp


def run(
    n_events: int = 200_000,
    rate: int = 10_000,
    seconds: float = 15.0,
    redis_url: str | None = None,
    kafka_bootstrap: str | None = None,
) -> dict[str, Any]:
    """Run both phases and return the figures (targets: >= 20,000 events/s, p99 <= 1 s)."""
    with _servers(redis_url, kafka_bootstrap) as (rurl, boot, tmp):
        _load_catalog(rurl)
        topic = f"bench-events-{uuid.uuid4().hex[:8]}"
        ensure_topics(boot, {topic: 6})
        env = {
            "CASCADE_REDIS_URL": rurl,
            "CASCADE_KAFKA_BOOTSTRAP": boot,
            "CASCADE_INGEST_TOPIC": topic,
            "CASCADE_INGEST_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
            "CASCADE_INGEST_SESSION_TIMEOUT_MS": "6000",
            "CASCADE_INGEST_HEARTBEAT_INTERVAL_MS": "2000",
            "CASCADE_LOG_LEVEL": "WARNING",
        }
        producer = KafkaProducer(
            bootstrap_servers=boot.split(","), acks=1, linger_ms=5, batch_size=256 * 1024
        )
        try:
            _preload(producer, topic, n_events)
            with running(service_spec("ingest", env, require_ready=True), tmp / "logs") as proc:
                base = proc.spec.url
                thr = _throughput(base, n_events)
                fresh = _freshness(base, producer, topic, rate, seconds, float(n_events))
        finally:
            producer.close()
    return {"ingest": thr, "freshness": fresh}


def _table(result: dict[str, Any]) -> str:
    thr, fresh = result["ingest"], result["freshness"]
    rows = [
        ("ingest throughput (1 worker)", f"{thr['events_per_s']:,} events/s", ">= 20,000"),
        ("  events drained", f"{thr['events']:,} in {thr['drain_s']} s", ""),
        ("freshness phase rate", f"{fresh['achieved_rate']:,} events/s", f"{fresh['rate']:,}"),
        ("freshness p50", f"{fresh['freshness_p50_s'] * 1000:.0f} ms", ""),
        ("freshness p99", f"{fresh['freshness_p99_s'] * 1000:.0f} ms", "<= 1000 ms"),
    ]
    return "\n".join(f"{a:<32} {b:>24}   {c}" for a, b, c in rows)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--redis-url")
    parser.add_argument("--kafka-bootstrap")
    args = parser.parse_args(argv)
    result = run(args.events, args.rate, args.seconds, args.redis_url, args.kafka_bootstrap)
    sys.stdout.write(_table(result) + "\n")


if __name__ == "__main__":
    main()
