"""Start the serving path as real processes: the four stage services and the gateway.

Used by the serving benchmark and by the integration tests (``tests/integration/
serving_fixtures.py`` re-exports it), so both measure and test the same thing. Every process
is started on a free port, is waited for on its ``/readyz`` (models loaded, schema checked,
warmed up; for the gateway: a warm-up request served whole) and is stopped on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.local.processes import (
    ProcessSpec,
    RunningProcess,
    start,
    stop,
    wait_ready,
)
from deploy.local.stack import service_on_free_port

REPO = Path(__file__).resolve().parents[1]
STAGE_SERVICES = ("candidate_generation", "filtering", "ranking", "reranking")
READY_TIMEOUT_S = 120.0  # a registry download plus model warm-up on a busy 2-core machine


def service_spec(name: str, env: dict[str, str], label: str | None = None) -> ProcessSpec:
    """``python -m services.<name>`` on a free port, ready when its /readyz answers 200."""
    return service_on_free_port(name, env, label=label, ready_timeout_s=READY_TIMEOUT_S)


def with_stage_urls(env: dict[str, str], procs: dict[str, RunningProcess]) -> dict[str, str]:
    """``env`` plus the stage URLs of ``procs`` for a gateway."""
    urls = {f"CASCADE_GATEWAY_{n.upper()}_URL": procs[n].spec.url for n in STAGE_SERVICES}
    return {**env, **urls}


@contextmanager
def serving_stack(
    env: dict[str, str],
    log_dir: Path,
    in_process_gateway: bool = False,
    gateway_env: dict[str, str] | None = None,
    more_gateways: dict[str, dict[str, str]] | None = None,
) -> Iterator[dict[str, RunningProcess]]:
    """The four stage services and a gateway pointed at them, each a real process.

    ``env`` carries the platform settings (CASCADE_REDIS_URL, CASCADE_MODELS_DIR or
    CASCADE_MLFLOW_URI, ...). With ``in_process_gateway`` a second gateway runs every stage
    itself (mode in_process); ``more_gateways`` adds one more per label, with its settings on
    top of the first one's. Yields name -> RunningProcess (``.spec.url`` is its base URL);
    a caller that restarts one puts the new process back under its name, so it is stopped too.
    """
    procs: dict[str, RunningProcess] = {}
    try:
        for name in STAGE_SERVICES:  # start all, then wait: the model loads overlap
            procs[name] = start(service_spec(name, env), log_dir)
        for name in STAGE_SERVICES:
            wait_ready(procs[name])
        genv = {**with_stage_urls(env, procs), **(gateway_env or {})}
        gateways = {"gateway": service_spec("gateway", genv)}
        if in_process_gateway:
            ienv = {**genv, "CASCADE_GATEWAY_MODE": "in_process"}
            gateways["gateway_in_process"] = service_spec("gateway", ienv, "gateway_in_process")
        for label, extra in (more_gateways or {}).items():
            gateways[label] = service_spec("gateway", {**genv, **extra}, label)
        for label, spec in gateways.items():
            procs[label] = start(spec, log_dir)
        for label in gateways:
            wait_ready(procs[label])
        yield procs
    finally:  # whatever runs under each name now (a test may have restarted one)
        for proc in reversed(list(procs.values())):
            stop(proc)
