"""Feature read benchmark: OnlineStore.get_items for 500 items and get_user, against real Redis.

Loads the MovieLens catalog and replayed ratings (or a synthetic catalog when the data folder is
missing) into a Redis (started here unless ``--redis-url`` is given), then times many calls.
Prints a table of p50/p99 in milliseconds and returns a dict (target: 500 items <= 3 ms).
``get_items`` is timed twice: every read from Redis, and with the serving processes' 1 s read
cache of item counters (``read_cache_s``), random 500-item samples of the catalog either way.

    python -m loadtests.bench_features [--calls 2000] [--items 500]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import redis

from deploy.local import infra
from deploy.local.processes import free_port, running
from shared.events import Event
from shared.features.item import GENRES
from shared.online_store import ItemRecord, keys
from shared.online_store.reader import OnlineStore
from shared.online_store.writer import StoreWriter
from shared.platform.redis_client import create_async_redis

DATA = Path("data/ml-100k")


def _load(redis_url: str, data: Path) -> tuple[list[str], list[str], float]:
    """Fill the store; returns (item ids, user ids, the 'now' to read at)."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    if data.is_dir():
        from services.feature_store.bootstrap import bootstrap

        bootstrap(client, str(data), train_only=False, batch=5000)
        members = client.smembers(keys.CATALOG_IDS)
        items = sorted(str(i, "utf-8") if isinstance(i, bytes) else i for i in members)
        users = [str(u) for u in range(1, 944)]
        now = float(client.get(keys.TRENDING_REF) or time.time()) + 3600
    else:
        items, users, now = _synthetic(client)
    client.close()
    return items, users, now


def _synthetic(client: redis.Redis) -> tuple[list[str], list[str], float]:
    rng = random.Random(3)
    now = time.time()
    writer = StoreWriter(client)
    items = [str(i) for i in range(2000)]
    writer.put_items([ItemRecord(i, genres=tuple(rng.sample(GENRES, 2))) for i in items])
    events = [
        Event(event_id=str(k), user_id=str(rng.randrange(1000)), item_id=rng.choice(items),
              type="click", timestamp=now - rng.random() * 7 * 86_400)
        for k in range(100_000)
    ]  # fmt: skip
    for k in range(0, len(events), 5000):
        writer.apply_events(events[k : k + 5000])
    return items, [str(u) for u in range(1000)], now


async def _time(fn: Callable[[], Awaitable[Any]], calls: int) -> dict[str, float]:
    for _ in range(min(50, calls)):  # warm: connections, catalog cache, code paths
        await fn()
    samples = np.empty(calls)
    for k in range(calls):
        start = time.perf_counter()
        await fn()
        samples[k] = time.perf_counter() - start
    p50, p99 = np.percentile(samples, [50, 99]) * 1000
    return {"p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3), "calls": calls}


async def _measure(redis_url: str, data: Path, calls: int, n_items: int) -> dict[str, Any]:
    items, users, now = _load(redis_url, data)
    client = create_async_redis(redis_url)
    store = OnlineStore(client)
    cached = OnlineStore(client, cache_ttl_s=1.0)  # as the gateway reads (read_cache_s)
    rng = random.Random(5)
    try:
        result: dict[str, Any] = {
            f"get_items_{n_items}": await _time(
                lambda: store.get_items(rng.sample(items, n_items), now), calls
            ),
            f"get_items_{n_items}_read_cache_1s": await _time(
                lambda: cached.get_items(rng.sample(items, n_items), now), calls
            ),
            "get_user": await _time(lambda: store.get_user(rng.choice(users), now), calls),
            "trending_100": await _time(lambda: store.trending(100, now), calls),
        }
    finally:
        await client.aclose()
    result["catalog_items"] = len(items)
    return result


@contextmanager
def _redis(redis_url: str | None) -> Iterator[str]:
    if redis_url:
        yield redis_url
        return
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-features-")))
        spec = infra.redis_spec(free_port(), tmp / "redis")
        stack.enter_context(running(spec, tmp / "logs"))
        yield spec.url


def run(
    calls: int = 2000, n_items: int = 500, redis_url: str | None = None, data: Path = DATA
) -> dict[str, Any]:
    """Time the feature reads; returns {name: {p50_ms, p99_ms, calls}}."""
    with _redis(redis_url) as url:
        return asyncio.run(_measure(url, data, calls, n_items))


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'feature read':<30} {'p50 ms':>8} {'p99 ms':>8}   target"]
    for name, r in result.items():
        if isinstance(r, dict):
            target = "<= 3 ms" if name.startswith("get_items") else ""
            lines.append(f"{name:<30} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}   {target}")
    lines.append(f"(catalog of {result['catalog_items']} items)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Online store read latency.")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--redis-url")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    sys.stdout.write(_table(run(args.calls, args.items, args.redis_url, args.data)) + "\n")


if __name__ == "__main__":
    main()
