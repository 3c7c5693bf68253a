"""Events API benchmark: events/s accepted (broker-acknowledged) in batches of 100.

Runs one real ``python -m services.events`` process against a real Kafka-protocol broker (a
private Tansu started here unless a bootstrap is given) and posts pre-encoded batches from
asyncio clients at a few concurrency levels. Every 202 means the broker acknowledged the whole
batch (acks=all). Prints a table and returns a dict; the target is >= 2,000 events/s.

    python -m loadtests.bench_events [--kafka-bootstrap HOST:PORT] [--batches 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from deploy.local import infra
from deploy.local.processes import free_port, running
from deploy.local.stack import service_on_free_port

TYPES = ("impression", "impression", "impression", "click", "watch", "like", "rate")
TARGET_EVENTS_PER_S = 2_000


def _bodies(n_batches: int, batch_size: int) -> list[bytes]:
    """Pre-encoded request bodies, so the client spends its CPU on HTTP, not on JSON."""
    now = time.time()
    out = []
    for b in range(n_batches):
        events = []
        for k in range(batch_size):
            kind = TYPES[(b + k) % len(TYPES)]
            e: dict[str, Any] = {
                "event_id": f"{b}-{k}-{uuid.uuid4().hex[:6]}",
                "user_id": str((b * batch_size + k) % 5000),
                "item_id": str((b * 7 + k * 13) % 1682),
                "type": kind,
                "timestamp": now - 1.0,
                "request_id": f"r{b}",
                "position": k % 20,
            }
            if kind in ("watch", "rate"):
                e["value"] = 4.0
            events.append(e)
        out.append(orjson.dumps({"events": events}))
    return out


async def _load(base: str, bodies: Sequence[bytes], concurrency: int) -> dict[str, Any]:
    """Post every body with ``concurrency`` clients; latency of each batch and the wall time."""
    latencies: list[float] = []
    failures = 0
    queue = iter(bodies)
    headers = {"content-type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        for body in queue:
            start = time.perf_counter()
            resp = await http.post(f"{base}/v1/events", content=body, headers=headers)
            latencies.append(time.perf_counter() - start)
            failures += resp.status_code != 202

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    lat_ms = np.asarray(latencies) * 1000
    per_batch = len(orjson.loads(bodies[0])["events"])
    return {
        "batches": len(bodies),
        "failures": failures,
        "wall_s": round(wall, 3),
        "events_per_s": round((len(bodies) - failures) * per_batch / wall),
        "batch_latency_p50_ms": round(float(np.percentile(lat_ms, 50)), 2),
        "batch_latency_p99_ms": round(float(np.percentile(lat_ms, 99)), 2),
    }


@contextmanager
def _broker(kafka_bootstrap: str | None) -> Iterator[tuple[str, Path]]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-events-")))
        if kafka_bootstrap is None:
            spec = infra.tansu_spec(free_port())
            stack.enter_context(running(spec, tmp / "logs"))
            kafka_bootstrap = spec.url
        yield kafka_bootstrap, tmp


def run(
    kafka_bootstrap: str | None = None,
    batches: int = 300,
    batch_size: int = 100,
    concurrency: Sequence[int] = (1, 4, 16),
) -> dict[str, Any]:
    """Benchmark the events API; returns per-concurrency figures and the best events/s."""
    with _broker(kafka_bootstrap) as (bootstrap, tmp):
        env = {
            "CASCADE_KAFKA_BOOTSTRAP": bootstrap,
            "CASCADE_EVENTS_TOPIC": f"bench-events-{uuid.uuid4().hex[:8]}",
            "CASCADE_LOG_LEVEL": "WARNING",
        }
        with running(service_on_free_port("events", env), tmp / "logs") as proc:
            base = proc.spec.url
            asyncio.run(_load(base, _bodies(10, batch_size), 2))  # warm-up: connections, JIT-free
            levels = {
                c: asyncio.run(_load(base, _bodies(batches, batch_size), c)) for c in concurrency
            }
    best = max(levels.values(), key=lambda r: r["events_per_s"])
    return {
        "batch_size": batch_size,
        "levels": {str(c): r for c, r in levels.items()},
        "events_per_s": best["events_per_s"],
        "batch_latency_p50_ms": best["batch_latency_p50_ms"],
        "batch_latency_p99_ms": best["batch_latency_p99_ms"],
        "target_events_per_s": TARGET_EVENTS_PER_S,
    }


def _table(result: dict[str, Any]) -> str:
    head = f"{'clients':>8} {'batches':>8} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'fail':>5}"
    rows = [f"events API, batches of {result['batch_size']} (target >= {TARGET_EVENTS_PER_S:,}/s)"]
    rows.append(head)
    for c, r in result["levels"].items():
        rows.append(
            f"{c:>8} {r['batches']:>8} {r['events_per_s']:>10,} {r['batch_latency_p50_ms']:>8}"
            f" {r['batch_latency_p99_ms']:>8} {r['failures']:>5}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args(argv)
    result = run(args.kafka_bootstrap, args.batches, args.batch_size, args.concurrency)
    sys.stdout.write(_table(result) + "\n")


if __name__ == "__main__":
    main()
