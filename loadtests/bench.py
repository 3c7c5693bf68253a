"""`make bench`: run every benchmark against real local servers, print a table, and write
reports/bench.json.

Each benchmark is a module with ``run(**kwargs) -> dict``; it receives the subset of
``redis_url`` / ``kafka_bootstrap`` / ``mlflow_uri`` / ``models_dir`` / ``data_dir`` its
signature asks for. Infrastructure is started once here (or taken from CASCADE_* env vars).
Figures are medians and p99s from one run on a shared 2-core machine: compare ratios measured in
the same run, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from deploy.local import infra
from deploy.local.processes import free_port, start, stop, wait_ready
from loadtests.machine_speed import reference_speed

REPO_ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench")

# name -> module; order = cheapest first, so a failure late still leaves early figures.
BENCHES: dict[str, str] = {
    "features": "loadtests.bench_features",
    "ingest": "loadtests.bench_ingest",
    "events": "loadtests.bench_events",
    "serving": "loadtests.bench_serving",
    "rollouts": "loadtests.bench_rollouts",
}


@contextmanager
def _infra(stack: ExitStack, workdir: Path) -> Iterator[dict[str, str]]:
    """Redis and the broker from env, or started here for the run."""
    urls = {
        "redis_url": os.environ.get("CASCADE_REDIS_URL", ""),
        "kafka_bootstrap": os.environ.get("CASCADE_KAFKA_BOOTSTRAP", ""),
    }
    specs = []
    if not urls["redis_url"]:
        specs.append(("redis_url", infra.redis_spec(free_port(), workdir / "redis")))
    if not urls["kafka_bootstrap"]:
        specs.append(("kafka_bootstrap", infra.tansu_spec(free_port())))
    for key, spec in specs:
        proc = start(spec, workdir / "logs")
        stack.callback(stop, proc)
        wait_ready(proc)
        urls[key] = spec.url
    yield urls


def _call(module_name: str, available: dict[str, Any]) -> dict[str, Any]:
    module = importlib.import_module(module_name)
    params = inspect.signature(module.run).parameters
    kwargs = {k: v for k, v in available.items() if k in params}
    result: dict[str, Any] = module.run(**kwargs)
    return result


def _flatten(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, rows)
    elif isinstance(value, float):
        rows.append((prefix, f"{value:,.3f}"))
    else:
        rows.append((prefix, str(value)))


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="subset to run")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "bench.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for chatty in ("httpx", "kafka"):  # one line per request / connection would bury the table
        logging.getLogger(chatty).setLevel(logging.WARNING)
    report: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "speed": reference_speed(),
        },
        "results": {},
    }
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="cascade-bench-") as tmp:
        available: dict[str, Any] = dict(stack.enter_context(_infra(stack, Path(tmp))))
        available["models_dir"] = REPO_ROOT / "models"
        available["data_dir"] = REPO_ROOT / "data"
        for name in args.only or list(BENCHES):
            log.info("running %s", name)
            try:
                report["results"][name] = _call(BENCHES[name], available)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                log.exception("benchmark %s failed", name)
                report["results"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    rows: list[tuple[str, str]] = []
    _flatten("", report["results"], rows)
    width = max((len(k) for k, _ in rows), default=10)
    table = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    sys.stdout.write(f"{table}\n\nwritten to {args.out}\n")
    failed = [n for n, r in report["results"].items() if isinstance(r, dict) and "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
