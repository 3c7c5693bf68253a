"""Every service's OpenAPI document holds against its running process (schemathesis).

Each service runs as a real process; every operation of its ``/openapi.json`` gets
``MAX_EXAMPLES`` schema-valid and as many schema-violating cases (derandomized: the same cases
every run; ``tests/utils/contracts.py``), with the admin token, so writes are exercised past
auth. Checked on every answer: no 5xx, a declared status code, content type and headers, a
body matching the declared schema; violating cases rejected, valid ones accepted (where an
operation's rule cannot be said in JSON Schema, ``EXEMPT`` says which and why).

Nothing shared is harmed: the serving stages and the gateway are the session's ``live_stack``
(reads only; candidate generation's index write is sent without the token, so only its 401 is
seen); catalog writes go to a private feature_store on its own Redis database, events to a
private events API on a topic of its own (consumed by a private ingest and offline sink), and
rollout control to a private controller with no registry (a created rollout could otherwise
move aliases in the session's MLflow: it answers the declared 503 instead).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from deploy.local.processes import RunningProcess, start, stop, wait_ready
from tests.integration.serving_fixtures import LiveStack
from tests.utils.auth import ADMIN
from tests.utils.contracts import Exempt, FuzzReport, fuzz
from tests.utils.servers import service_spec

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 5  # per operation and mode (positive, negative): the module's time budget
DB = 13  # the private feature_store's and ingest's Redis database
STAGE_COLUMNS = "column lengths must equal the number of ids: not expressible in JSON Schema"
EXEMPT = [
    *(
        Exempt(f"POST /v1/{path}", "positive_data_acceptance", STAGE_COLUMNS)
        for path in ("candidates", "filter", "rank", "rerank")
    ),
    Exempt(
        "POST /v1/rollouts",
        "positive_data_acceptance",
        "a candidate must name exactly the parts of its model kind (a cross-field rule)",
    ),
    Exempt(
        "POST /v1/rollouts",
        "not_a_server_error",
        "the private controller has no registry on purpose: a valid rollout gets the "
        "declared 503 (registry unreachable) instead of moving the session's aliases",
    ),
    Exempt(
        "GET /api/recommendations",
        "positive_data_acceptance",
        "variant names are the gateway's (its document lists them); the console passes its 422 on",
    ),
    Exempt(
        "POST /v1/experiments",
        "positive_data_acceptance",
        "arm names must be unique and weights sum to 1 (cross-item rules)",
    ),
]


def _db_url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{DB}"


@pytest.fixture(scope="module")
def private(
    live_stack: LiveStack,
    redis_url: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """The services whose writes must not reach shared state, each a real process of its
    own; started together, then waited for (their imports overlap)."""
    root = tmp_path_factory.mktemp("contracts")
    redis.Redis.from_url(_db_url(redis_url)).flushdb()
    topic = f"contracts-{uuid.uuid4().hex[:8]}"
    base = {"CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap, "OPENBLAS_NUM_THREADS": "1"}
    stream = {**base, "CASCADE_REDIS_URL": _db_url(redis_url)}
    envs: dict[str, tuple[dict[str, str], str]] = {
        "feature_store": ({**stream}, "/readyz"),
        "events": ({**base, "CASCADE_EVENTS_TOPIC": topic}, "/readyz"),
        "ingest": ({**stream, "CASCADE_INGEST_TOPIC": topic}, "/healthz"),
        "offline_sink": (
            {
                **base,
                "CASCADE_OFFLINE_SINK_TOPIC": topic,
                "CASCADE_OFFLINE_SINK_DATA_DIR": str(root / "events"),
            },
            "/healthz",
        ),
        "rollouts": (
            {
                **base,
                "CASCADE_MLFLOW_URI": "http://127.0.0.1:9",  # no registry: nothing to move
                "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
                "CASCADE_ROLLOUTS_STATE_PATH": str(root / "rollouts" / "state.sqlite"),
                "CASCADE_ROLLOUTS_CACHE_DIR": str(root / "rollouts" / "candidates"),
                "CASCADE_ROLLOUTS_SCRAPE_TARGETS": "gateway=http://127.0.0.1:9",
            },
            "/healthz",
        ),
    }
    procs: dict[str, RunningProcess] = {}
    try:
        for name, (env, ready) in envs.items():
            spec = service_spec(name, env, require_ready=ready == "/readyz")
            procs[name] = start(spec, root / "logs")
        urls = {name: proc.spec.url for name, proc in procs.items()}
        upstream = {
            "gateway": live_stack.url("gateway"),
            "events": urls["events"],
            "rollouts": urls["rollouts"],
            "feature_store": urls["feature_store"],
        }
        console_env = {
            **base,
            "CASCADE_REDIS_URL": _db_url(redis_url),
            "CASCADE_CONSOLE_SERVICE_URLS": ",".join(f"{k}={v}" for k, v in upstream.items()),
            "CASCADE_CONSOLE_TIMEOUT_S": "20",
        }
        procs["console"] = start(service_spec("console", console_env), root / "logs")
        for proc in procs.values():
            wait_ready(proc)
        yield {name: proc.spec.url for name, proc in procs.items()}
    finally:  # all at once, briefly: throwaway processes (their state is in tmp)
        with ThreadPoolExecutor(max(len(procs), 1)) as pool:
            list(pool.map(lambda proc: stop(proc, timeout_s=3.0), procs.values()))


def _events_in_window(case: Any) -> Any:
    """A valid batch's timestamps moved into the accepted window (the future bound moves
    with the clock, which a static schema cannot state)."""
    now = time.time()
    body = case.body if isinstance(case.body, dict) else {}
    for event in body.get("events", []):
        if isinstance(event, dict) and isinstance(event.get("timestamp"), int | float):
            event["timestamp"] = min(float(event["timestamp"]), now)
    return case


POSITIVE_MAPS = {"events": {"POST /v1/events": _events_in_window}}
LIVE = ("gateway", "candidate_generation", "filtering", "ranking", "reranking")
PRIVATE = ("feature_store", "events", "ingest", "offline_sink", "rollouts", "console")


class Tally:
    """Counts of every service's run, printed once at the end of the module."""

    reports: list[FuzzReport] = []


@pytest.fixture(scope="module", autouse=True)
def tally(request: pytest.FixtureRequest) -> Iterator[None]:
    """Prints the fuzzing counts (operations, cases, failures) when the module ends."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not Tally.reports:
        return
    with capture.global_and_fixture_disabled():
        ops = sum(r.operations for r in Tally.reports)
        cases = sum(r.cases for r in Tally.reports)
        fails = sum(len(r.failures) for r in Tally.reports)
        seconds = sum(r.seconds for r in Tally.reports)
        reporter.write_line("")
        for r in Tally.reports:
            reporter.write_line(f"contracts: {r.line()}")
        reporter.write_line(
            f"contracts: total {ops} operations, {cases} cases, {fails} failures, "
            f"{seconds:.1f} s fuzzing"
        )


def _check(report: FuzzReport) -> None:
    Tally.reports.append(report)
    assert report.cases >= report.operations, report.line()  # every operation got cases
    assert not report.failures, f"{report.line()}\n" + "\n".join(report.failures[:15])


@pytest.mark.parametrize("service", LIVE)
def test_serving_services_hold_to_their_documents(live_stack: LiveStack, service: str) -> None:
    # candidate generation's one write (index an item) is a shared index's: no token, so
    # only its refusal is exercised there (the private feature_store takes catalog writes).
    headers = {} if service == "candidate_generation" else ADMIN
    report = fuzz(
        service,
        live_stack.url(service),
        max_examples=MAX_EXAMPLES,
        headers=headers,
        exempt=EXEMPT,
    )
    _check(report)


@pytest.mark.parametrize("service", PRIVATE)
def test_private_services_hold_to_their_documents(private: dict[str, str], service: str) -> None:
    report = fuzz(
        service,
        private[service],
        max_examples=MAX_EXAMPLES,
        headers=ADMIN,
        exempt=EXEMPT,
        positive_map=POSITIVE_MAPS.get(service),
    )
    _check(report)


def test_the_known_500s_are_422s_naming_the_field(private: dict[str, str]) -> None:
    import httpx

    fs = private["feature_store"]
    trending = httpx.get(f"{fs}/v1/trending", params={"now": "5e-324"}, timeout=10)
    assert trending.status_code == 422 and trending.json()["detail"][0]["loc"] == ["query", "now"]
    body = {"item_ids": ["1"], "now": 3.2e307}
    features = httpx.post(f"{fs}/v1/items/features", json=body, timeout=10)
    assert features.status_code == 422
    assert features.json()["detail"][0]["loc"] == ["body", "now"]
    for now in ("inf", "nan", "4102444801"):
        got = httpx.get(f"{fs}/v1/users/u1/features", params={"now": now}, timeout=10)
        assert got.status_code == 422, (now, got.text)


@pytest.mark.parametrize(
    ("field", "value"),
    [("timestamp", 5e-324), ("accepted_ts", False), ("position", 2_147_483_648)],
)
def test_the_events_api_refuses_what_it_accepted_before(
    private: dict[str, str], field: str, value: object
) -> None:
    """The issue's findings against the real process: a 1970 timestamp and a client's
    accepted_ts were accepted, a position past int32 became a poison record."""
    import httpx

    event = {
        "event_id": "e",
        "user_id": "u",
        "item_id": "i",
        "type": "click",
        "timestamp": time.time(),
        field: value,
    }
    resp = httpx.post(f"{private['events']}/v1/events", json={"events": [event]}, timeout=10)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "events", 0, field]


def _post_unfinished(url: str, path: str, size: int) -> bytes:
    """POST a chunked body of ``size`` bytes and never finish it; the answer read so far."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk = b" " * 65_536
        for _ in range(size // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        return sock.recv(4096)  # no final chunk: a server waiting for the whole body hangs


@pytest.mark.parametrize("service", ["events", "filtering"])
def test_an_oversized_body_is_refused_while_it_streams(
    private: dict[str, str], live_stack: LiveStack, service: str
) -> None:
    """413 once the limit is passed, before the body has ended (events: 4 MiB, a stage: 8)."""
    url = private.get(service) or live_stack.url(service)
    path = "/v1/events" if service == "events" else "/v1/filter"
    answer = _post_unfinished(url, path, 9 << 20)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
