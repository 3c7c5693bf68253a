"""CPU per request of the open-loop generator against the raw-socket client it replaced.

The raw-socket HTTP/1.1 client (``_Conn``, ``_Pool``, ``open_loop`` of loadtests/bench_serving.py
up to commit ``RAW_SOCKET_COMMIT``) is read from git history rather than kept in the tree. Both
send the same open-loop schedule to the same server, alternately, ``--rounds`` times, in this one
process; the CPU of a run is utime + stime of this process (/proc/self/stat) over it, divided
by the requests sent. Modes: the raw-socket client and aiohttp on the default asyncio loop (as
the serving benchmark runs them), and aiohttp on uvloop (as ``make loadtest`` runs it).

    python -m loadtests.compare_load_generators [--url http://127.0.0.1:8000] [--rate 50]
        [--duration 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import types
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from loadtests import load_generator
from loadtests.loadtest import workload

REPO = Path(__file__).resolve().parents[1]
RAW_SOCKET_COMMIT = "0314c12"  # the last commit whose bench_serving.py had the raw-socket client
_SECTION = ("# ---- a lean HTTP/1.1 load generator", "# ---- the benchmark")
_HEADER = """from __future__ import annotations
import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
import numpy as np
import orjson
"""

OpenLoop = Callable[[str, list[str], float, float], Coroutine[Any, Any, Any]]


def raw_socket_open_loop(commit: str = RAW_SOCKET_COMMIT, repo: Path = REPO) -> OpenLoop:
    """``open_loop`` of the raw-socket client, as it was at ``commit`` of the git ``repo``."""
    src = subprocess.run(
        ["git", "show", f"{commit}:loadtests/bench_serving.py"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    start, end = src.index(_SECTION[0]), src.index(_SECTION[1])
    module = types.ModuleType("raw_socket_client")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(_HEADER + src[start:end], f"{commit}:bench_serving.py", "exec"), module.__dict__)
    fn: OpenLoop = module.open_loop
    return fn


def _run(coro: Coroutine[Any, Any, Any], uvloop: bool) -> Any:
    if not uvloop:
        return asyncio.run(coro)
    import uvloop as uv

    with asyncio.Runner(loop_factory=uv.new_event_loop) as runner:
        return runner.run(coro)


def compare(
    url: str, rate: float, duration_s: float, rounds: int, repo: Path = REPO
) -> dict[str, Any]:
    """Each mode ``rounds`` times, interleaved; CPU ms per request and p50 latency per run."""
    modes: dict[str, tuple[OpenLoop, bool]] = {
        "raw socket, asyncio loop": (raw_socket_open_loop(repo=repo), False),
        "aiohttp, asyncio loop": (load_generator.open_loop, False),
        "aiohttp, uvloop": (load_generator.open_loop, True),
    }
    paths = workload(int(rate * duration_s), 20, 0.1, seed=0)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    _run(load_generator.sequential(url, paths[:50]), False)  # warm the server's caches
    for _ in range(rounds):
        for mode, (open_loop, uvloop) in modes.items():
            cpu0 = load_generator.cpu_seconds()
            res = _run(open_loop(url, paths, rate, duration_s), uvloop)
            cpu_ms = (load_generator.cpu_seconds() - cpu0) * 1000.0 / res.n
            p50 = float(np.percentile(res.latencies_ms, 50)) if res.latencies_ms.size else 0.0
            runs[mode].append(
                {
                    "cpu_ms_per_request": round(cpu_ms, 4),
                    "p50_ms": round(p50, 2),
                    "errors": res.errors,
                }
            )
    summary = {m: float(np.median([r["cpu_ms_per_request"] for r in v])) for m, v in runs.items()}
    base = summary["raw socket, asyncio loop"]
    return {
        "url": url,
        "rate_rps": rate,
        "duration_s": duration_s,
        "rounds": rounds,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "runs": runs,
        "median_cpu_ms_per_request": summary,
        "ratio_to_raw_socket": {m: round(v / base, 2) for m, v in summary.items()},
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: prints one line per mode, then the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("CASCADE_GATEWAY_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repo", type=Path, default=REPO, help="git checkout holding the old client")
    a = ap.parse_args(argv)
    result = compare(a.url.rstrip("/"), a.rate, a.duration, a.rounds, a.repo)
    for mode, ms in result["median_cpu_ms_per_request"].items():
        ratio = result["ratio_to_raw_socket"][mode]
        sys.stdout.write(f"{mode:<26} {ms:.3f} ms CPU per request (x{ratio} raw socket)\n")
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
