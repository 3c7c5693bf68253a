"""CPU per request of the serving path for light users and for heavy users (those whose seen
window overflowed into the seen filter, shared/online_store/seen_filter.py).

Starts Redis (MovieLens-100K loaded), the broker, the four stages and a gateway (the serving
benchmark's platform: ``loadtests.bench_serving``), writes ``--heavy`` users with 1,500 clicks
on catalog items followed by 4,000 on other ids (so the catalog items left the 2,000-item
window), then runs an open loop at ``--rate`` requests/s over MovieLens users and over the heavy
ones and reads every process's CPU from /proc (utime + stime) per request served. The latency
budget is the shipped one with every deadline x20 (``generous_budget``): on shared cores a
stage that misses its deadline is answered by its fallback, and a fallback's CPU is not the
path's.

Run it with the code to compare on the path (``PYTHONPATH=<checkout>``): on a checkout without
the seen filter, the heavy users' windows just drop the old items (nothing to check), so the
before/after difference is what the filter costs.

    python -m loadtests.bench_seen_filter [--rate 20] [--seconds 30] [--heavy 20]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: see services/*/__main__.py

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import redis  # noqa: E402
import yaml  # noqa: E402

from loadtests.bench_serving import _cpu_per_request, _paths, _platform, _users  # noqa: E402
from loadtests.load_generator import sequential  # noqa: E402
from loadtests.serving_stack import serving_stack  # noqa: E402
from shared.events import Event  # noqa: E402
from shared.online_store.writer import StoreWriter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PARTS = ("stages", "sources")  # the budget's deadlines besides total_ms


def heavy_users(redis_url: str, n: int) -> list[str]:
    """``n`` users whose 1,500 catalog clicks were pushed out of the window by 4,000 more."""
    client = redis.Redis.from_url(redis_url)
    writer = StoreWriter(client)
    t0 = time.time() - 10 * 86_400
    users = [f"heavy-{u}" for u in range(n)]
    for user in users:
        items = [str(1 + i) for i in range(1500)] + [f"x-{user}-{i}" for i in range(4000)]
        events = [Event(event_id=f"{user}-{k}", user_id=user, item_id=item, type="click",
                        timestamp=t0 + k) for k, item in enumerate(items)]  # fmt: skip
        for k in range(0, len(events), 2000):
            writer.apply_events(events[k : k + 2000])
    client.close()
    return users


def generous_budget(path: Path, factor: float = 20.0) -> Path:
    """config/latency_budget.yaml with every deadline times ``factor`` (JSON is YAML)."""
    budget = yaml.safe_load((REPO / "config" / "latency_budget.yaml").read_text())
    scaled = {part: {k: v * factor for k, v in budget[part].items()} for part in PARTS}
    scaled["total_ms"] = budget["total_ms"] * factor
    path.write_text(json.dumps(scaled))
    return path


def run(rate: float, seconds: float, n_heavy: int) -> dict[str, Any]:
    """The figures, per kind of user."""
    out: dict[str, Any] = {"code": str(Path(sys.modules["shared"].__file__ or "").parents[1])}
    with tempfile.TemporaryDirectory(prefix="bench-seen-") as tmp:
        log_dir = Path(tmp)
        with _platform(log_dir, None, REPO / "data" / "ml-100k") as (env, infra_pids):
            env["CASCADE_LATENCY_BUDGET"] = str(generous_budget(log_dir / "budget.json"))
            heavy = heavy_users(env["CASCADE_REDIS_URL"], n_heavy)
            with serving_stack(env, log_dir) as procs:
                url = procs["gateway"].spec.url
                pids = {name: p.pid for name, p in procs.items()} | infra_pids
                n = int(rate * seconds)
                light = [u for u in _users(n * 2) if not u.startswith("new-")][:n]
                asyncio.run(sequential(url, _paths(light[:50] + heavy)))  # warm both paths
                for kind, users in (("light", light), ("heavy", (heavy * n)[:n])):
                    out[kind] = _cpu_per_request(pids, url, users, rate)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run and print the figures as JSON."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--heavy", type=int, default=20)
    args = ap.parse_args(argv)
    sys.stdout.write(json.dumps(run(args.rate, args.seconds, args.heavy), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
