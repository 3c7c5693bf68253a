"""The online store on one Redis and on a local Redis Cluster: ingest CPU per event, reads.

    python -m loadtests.bench_store_cluster [--users 5000] [--batches 20] [--only node|cluster]

Starts a private redis-server and a local cluster of three primaries (``deploy/local/infra``),
writes the same catalog and mixed events to each through ``StoreWriter`` (2,000 events a batch
over ``--users`` users), and reports the writer's CPU (Python) and every redis-server's CPU
(utime + stime from /proc) per event, the write rate, then ``get_items`` for 500 items (no read
cache) on each store, interleaved. CPU per event is steadier than rates on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import redis

from deploy.local import infra
from deploy.local.processes import free_port, running
from shared.events import Event, EventType
from shared.online_store.reader import OnlineStore
from shared.online_store.types import ItemRecord, UserProfile
from shared.online_store.writer import StoreWriter
from shared.platform.redis_client import SyncRedis, create_async_redis, create_redis

KINDS: tuple[EventType, ...] = (
    "click", "impression", "impression", "like", "rate", "watch", "hide", "report",
)  # fmt: skip
BATCH, ITEMS = 2000, 1500


def batches(n: int, users: int, tag: str) -> Iterator[list[Event]]:
    """``n`` batches of mixed events, item and user ids spread by a fixed stride."""
    base = time.time() - 3600
    for b in range(n):
        out = []
        for k in range(BATCH):
            j = b * BATCH + k
            kind = KINDS[j % len(KINDS)]
            value = float(1 + j % 5) if kind in ("rate", "watch") else None
            out.append(Event(event_id=f"{tag}-{j}", user_id=f"u{j * 7919 % users}",
                             item_id=f"i{j * 31 % ITEMS}", type=kind, value=value,
                             timestamp=base + j / 1000))  # fmt: skip
        yield out


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(client: SyncRedis) -> list[int]:
    """The redis-server processes behind a client (every node of a cluster)."""
    if isinstance(client, redis.Redis):
        return [int(client.info("server")["process_id"])]
    ports = [node.port for node in client.get_nodes()]  # type: ignore[no-untyped-call]
    return [int(redis.Redis(port=p).info("server")["process_id"]) for p in ports]


def ingest(client: SyncRedis, users: int, n: int) -> str:
    """Load the catalog and profiles, warm up, then time ``n`` batches; one report line."""
    writer = StoreWriter(client)
    writer.put_items([ItemRecord(f"i{k}", genres=("Drama", "Comedy")[: 1 + k % 2])
                      for k in range(ITEMS)])  # fmt: skip
    writer.put_users([UserProfile(f"u{k}", age=20 + k % 40, gender="MF"[k % 2])
                      for k in range(users)])  # fmt: skip
    for events in batches(2, users, "warm"):
        writer.apply_events(events)
    data, pids = list(batches(n, users, "run")), server_pids(client)
    py0, rs0, t0 = time.process_time(), sum(map(cpu_s, pids)), time.perf_counter()
    for events in data:
        writer.apply_events(events)
    py, rs = time.process_time() - py0, sum(map(cpu_s, pids)) - rs0
    wall, total = time.perf_counter() - t0, n * BATCH
    return (f"python {py / total * 1e6:.1f} us/event, redis {rs / total * 1e6:.1f} us/event "
            f"({len(pids)} server(s)), {total / wall:,.0f} events/s")  # fmt: skip


async def reads(targets: dict[str, tuple[str, bool]], rounds: int = 300) -> dict[str, str]:
    """get_items(500) p50/p90 per store, the stores taking turns in a random order."""
    clients = {n: create_async_redis(u, timeout_s=5.0, cluster=c) for n, (u, c) in targets.items()}
    stores = {name: OnlineStore(client) for name, client in clients.items()}
    for store in stores.values():
        await store.preload_catalog()
    rng, ids, now = random.Random(1), [f"i{k}" for k in range(ITEMS)], time.time()
    took: dict[str, list[float]] = {name: [] for name in stores}
    for r in range(rounds):
        batch = rng.sample(ids, 500)
        for name in sorted(stores, key=lambda _: rng.random()):
            start = time.perf_counter()
            await stores[name].get_items(batch, now)
            if r >= rounds // 10:
                took[name].append((time.perf_counter() - start) * 1e3)
    for client in clients.values():
        await client.aclose()
    return {n: f"get_items(500) p50 {statistics.median(v):.2f} ms, p90 "
               f"{sorted(v)[int(0.9 * len(v))]:.2f} ms" for n, v in took.items()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--users", type=int, default=5000, help="users the events spread over")
    parser.add_argument("--batches", type=int, default=20, help="2,000-event batches timed")
    parser.add_argument("--only", choices=("node", "cluster"))
    args = parser.parse_args(argv)
    kinds = [args.only] if args.only else ["node", "cluster"]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root, targets = Path(tmp), {}
        if "node" in kinds:
            port = free_port()
            stack.enter_context(running(infra.redis_spec(port, root / "redis"), root / "logs"))
            targets["node"] = (f"redis://127.0.0.1:{port}/0", False)
        if "cluster" in kinds:
            url = stack.enter_context(infra.running_redis_cluster(root / "rc", root / "logs"))
            targets["cluster"] = (url, True)
        lines = {name: ingest(create_redis(u, 30.0, c), args.users, args.batches)
                 for name, (u, c) in targets.items()}  # fmt: skip
        read = asyncio.run(reads(targets))
    for name in targets:
        sys.stdout.write(f"{name}: {lines[name]}; {read[name]}\n")
    load = os.getloadavg()[0]
    sys.stdout.write(f"(users {args.users}, {args.batches} batches of {BATCH}, load {load:.1f})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
