"""Ingest benchmark: events/s one worker applies to Redis, and freshness at half that rate.

Runs against real servers: a Redis and a Tansu broker (started here unless URLs are given), one
``python -m services.ingest`` and one ``python -m services.events`` process.

1. throughput: N events pre-loaded on a fresh topic; how fast the worker drains them (the group
   join is excluded).
2. freshness, worker side: events produced straight to the topic at a fixed rate, stamped with
   ``accepted_ts`` as the events API does; the worker's freshness histogram (stamp → the batch's
   Redis write returned).
3. freshness end to end: the same rate posted to the real events API in batches of 100 (its
   202 means the broker has them); the worker's histogram then starts at the API's own
   acceptance. A probe also posts one event every 200 ms and times, from the client, how long
   until its dedupe mark is readable in Redis (POST → 202 → broker → worker → Redis).

    python -m loadtests.bench_ingest [--events 200000] [--rate 10000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

import httpx
import numpy as np
import orjson
import redis
import redis.asyncio as aioredis
from kafka import KafkaProducer

from deploy.local import infra
from deploy.local.processes import free_port, running
from deploy.local.stack import service_on_free_port
from shared.features.item import GENRES
from shared.online_store import ItemRecord
from shared.online_store.writer import StoreWriter
from shared.stream.topic_keeper import ensure_topics

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


def _api_bodies(n: int, batch: int = 100) -> list[bytes]:
    """Request bodies of ``batch`` events each (pre-encoded: the client spends CPU on HTTP)."""
    events = [{k: v for k, v in e.items() if v is not None} for e in _events(n, seed=3)]
    return [orjson.dumps({"events": events[k : k + batch]}) for k in range(0, n, batch)]


async def _post_paced(api: str, bodies: list[bytes], rate: int, clients: int = 8) -> float:
    """Post every body, batch k not before start + k·100/rate; returns the achieved rate."""
    per_batch = len(orjson.loads(bodies[0])["events"])
    queue = iter(enumerate(bodies))
    start = time.monotonic()
    headers = {"content-type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        for k, body in queue:
            await asyncio.sleep(max(0.0, start + k * per_batch / rate - time.monotonic()))
            resp = await http.post(f"{api}/v1/events", content=body, headers=headers)
            if resp.status_code != 202:
                raise RuntimeError(f"events API answered {resp.status_code}: {resp.text[:200]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return len(bodies) * per_batch / (time.monotonic() - start)


async def _probe(api: str, redis_url: str, stop: asyncio.Event) -> list[float]:
    """Every 200 ms one event via the API; seconds from POST until its mark is in Redis."""
    store = aioredis.Redis.from_url(redis_url)
    took: list[float] = []
    async with httpx.AsyncClient(timeout=30) as http:
        while not stop.is_set():
            ev = next(_events(1, seed=random.randrange(1 << 30)))
            ev["event_id"] = f"probe-{uuid.uuid4().hex}"
            body = {"events": [{k: v for k, v in ev.items() if v is not None}]}
            start = time.monotonic()
            resp = await http.post(f"{api}/v1/events", json=body)
            if resp.status_code == 202:
                while not await store.exists(f"ev:{ev['event_id']}"):
                    await asyncio.sleep(0.002)
                took.append(time.monotonic() - start)
            await asyncio.sleep(0.2)
    await store.aclose()
    return took


async def _api_phase(
    api: str, redis_url: str, bodies: list[bytes], rate: int
) -> tuple[float, list[float]]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(api, redis_url, stop))
    try:
        achieved = await _post_paced(api, bodies, rate)
    finally:
        stop.set()
    return achieved, await probe


def _freshness_via_api(
    base: str, api: str, redis_url: str, rate: int, seconds: float, already: float
) -> dict[str, float]:
    bodies = _api_bodies(int(rate * seconds))
    before = _metrics(base)
    achieved, probe = asyncio.run(_api_phase(api, redis_url, bodies, rate))
    _wait_applied(base, already + len(bodies) * 100 + len(probe), timeout_s=60)
    after = _metrics(base)
    ms = np.asarray(probe) * 1000 if probe else np.full(1, np.nan)
    return {
        "rate": rate,
        "achieved_rate": round(achieved),
        "freshness_p50_s": round(_quantile(before, after, 0.50), 4),
        "freshness_p99_s": round(_quantile(before, after, 0.99), 4),
        "probe_n": len(probe),
        "probe_p50_ms": round(float(np.percentile(ms, 50)), 1),
        "probe_p99_ms": round(float(np.percentile(ms, 99)), 1),
        "probe_max_ms": round(float(ms.max()), 1),
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
    """Run the three phases and return the figures (targets: >= 20,000 events/s into Redis
    with one worker, freshness p99 <= 1 s at 10,000 events/s)."""
    with _servers(redis_url, kafka_bootstrap) as (rurl, boot, tmp):
        _load_catalog(rurl)
        topic = f"bench-events-{uuid.uuid4().hex[:8]}"
        ensure_topics(boot, {topic: 6})
        env = {
            "CASCADE_REDIS_URL": rurl,
            "CASCADE_KAFKA_BOOTSTRAP": boot,
            "CASCADE_INGEST_TOPIC": topic,
            "CASCADE_EVENTS_TOPIC": topic,
            "CASCADE_INGEST_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
            "CASCADE_INGEST_SESSION_TIMEOUT_MS": "6000",
            "CASCADE_INGEST_HEARTBEAT_INTERVAL_MS": "2000",
            "CASCADE_LOG_LEVEL": "WARNING",
        }
        producer = KafkaProducer(
            bootstrap_servers=boot.split(","), acks=1, linger_ms=5, batch_size=256 * 1024
        )
        load_before = os.getloadavg()[0]
        try:
            _preload(producer, topic, n_events)
            with ExitStack() as stack:
                worker = stack.enter_context(
                    running(service_on_free_port("ingest", env), tmp / "logs")
                )
                api = stack.enter_context(
                    running(service_on_free_port("events", env), tmp / "logs")
                )
                base = worker.spec.url
                thr = _throughput(base, n_events)
                fresh = _freshness(base, producer, topic, rate, seconds, float(n_events))
                done = float(n_events) + int(rate * seconds)
                e2e = _freshness_via_api(base, api.spec.url, rurl, rate, seconds, done)
        finally:
            producer.close()
    load = {"load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]}
    return {"ingest": thr, "freshness": fresh, "freshness_via_api": e2e, "machine": load}


def _table(result: dict[str, Any]) -> str:
    thr, fresh, e2e = result["ingest"], result["freshness"], result["freshness_via_api"]
    ms = "{:.0f} ms".format
    rows = [
        ("ingest throughput (1 worker)", f"{thr['events_per_s']:,} events/s", ">= 20,000"),
        ("  events drained", f"{thr['events']:,} in {thr['drain_s']} s", ""),
        ("freshness phase rate", f"{fresh['achieved_rate']:,} events/s", f"{fresh['rate']:,}"),
        ("  freshness p50", ms(fresh["freshness_p50_s"] * 1000), ""),
        ("  freshness p99", ms(fresh["freshness_p99_s"] * 1000), "<= 1000 ms"),
        ("via events API, rate", f"{e2e['achieved_rate']:,} events/s", f"{e2e['rate']:,}"),
        ("  freshness p50 (API accept)", ms(e2e["freshness_p50_s"] * 1000), ""),
        ("  freshness p99 (API accept)", ms(e2e["freshness_p99_s"] * 1000), "<= 1000 ms"),
        (f"  probe POST→Redis (n={e2e['probe_n']})", f"p50 {ms(e2e['probe_p50_ms'])}",
         f"p99 {ms(e2e['probe_p99_ms'])}, max {ms(e2e['probe_max_ms'])}"),
        ("load average (1 min)", f"{result['machine']['load_avg_1m_before']:.1f} → "
         f"{result['machine']['load_avg_1m_after']:.1f}", "2 cores, shared"),
    ]  # fmt: skip
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
