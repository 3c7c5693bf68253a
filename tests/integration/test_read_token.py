"""Reads protected by the read token, on real processes: a serving stack (four stages and a
gateway), the feature store, the rollout controller and the console, all started with
``CASCADE_READ_TOKEN``. A read without a token is a 401 that says how to authenticate, a wrong
one a 403, the read and the admin token both read; health and metrics stay open (probes and
Prometheus carry no token); and the platform keeps working among itself: the gateway's stage
calls and its assignment polls, and the console's reads, carry the token (the gateway answers
whole, not degraded)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deploy.local.processes import RunningProcess, start, stop, wait_ready
from loadtests.serving_stack import serving_stack
from shared.platform.auth import READ_HOW
from tests.integration.serving_fixtures import load_store, write_budget
from tests.utils.auth import ADMIN, READ, TEST_READ_TOKEN
from tests.utils.servers import service_spec

pytestmark = pytest.mark.integration
DB = 12  # a database of its own: other suites flush theirs
WRONG = {"Authorization": "Bearer " + "w" * 40}


@dataclass(frozen=True)
class Protected:
    """Base URLs of the processes started with reads protected."""

    urls: dict[str, str]

    def get(self, service: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """GET ``path`` of ``service``."""
        return httpx.get(self.urls[service] + path, headers=headers, timeout=30)


def _extra(root: Path, base: dict[str, str]) -> dict[str, tuple[dict[str, str], str]]:
    """The services beside the serving stack: their settings and the path they are ready on."""
    rollouts = {
        **base,
        "CASCADE_MLFLOW_URI": "http://127.0.0.1:9",  # no registry: nothing of the session moves
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "CASCADE_ROLLOUTS_STATE_PATH": str(root / "rollouts" / "state.sqlite"),
        "CASCADE_ROLLOUTS_CACHE_DIR": str(root / "rollouts" / "candidates"),
        "CASCADE_ROLLOUTS_SCRAPE_TARGETS": "gateway=http://127.0.0.1:9",
    }
    return {"feature_store": (base, "/readyz"), "rollouts": (rollouts, "/healthz")}


@pytest.fixture(scope="module")
def protected(
    registered_models: dict[str, str],
    redis_url: str,
    kafka_bootstrap: str,
    mlflow_tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Protected]:
    """Every process with ``CASCADE_READ_TOKEN`` set (each also has the session's admin
    token); the store is a database of the session's Redis loaded with the test data."""
    root = tmp_path_factory.mktemp("reads")
    log_dir = root / "logs"
    store = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    load_store(store)
    base = {
        "CASCADE_READ_TOKEN": TEST_READ_TOKEN,
        "CASCADE_REDIS_URL": store,
        "CASCADE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "OPENBLAS_NUM_THREADS": "1",
    }
    procs: dict[str, RunningProcess] = {}
    try:
        for name, (env, ready) in _extra(root, base).items():
            procs[name] = start(service_spec(name, env, require_ready=ready == "/readyz"), log_dir)
        for proc in procs.values():
            wait_ready(proc)
        stack_env = {
            **base,
            "CASCADE_MLFLOW_URI": mlflow_tracking_uri,
            "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
            "CASCADE_MODEL_CACHE_DIR": str(root / "model_cache"),
            "CASCADE_LATENCY_BUDGET": str(write_budget(root / "budget.yaml")),
        }
        gateway_env = {"CASCADE_GATEWAY_ROLLOUTS_URL": procs["rollouts"].spec.url}
        with serving_stack(stack_env, log_dir, gateway_env=gateway_env) as stack:
            urls = {name: proc.spec.url for name, proc in {**procs, **stack}.items()}
            upstream = ("gateway", "rollouts", "feature_store", "ranking")
            console = {
                **base,
                "CASCADE_CONSOLE_SERVICE_URLS": ",".join(f"{n}={urls[n]}" for n in upstream),
                "CASCADE_CONSOLE_TIMEOUT_S": "20",
            }
            procs["console"] = start(service_spec("console", console), log_dir)
            wait_ready(procs["console"])
            yield Protected({**urls, "console": procs["console"].spec.url})
    finally:
        with ThreadPoolExecutor(max(len(procs), 1)) as pool:
            list(pool.map(lambda proc: stop(proc, timeout_s=3.0), procs.values()))


# One read of each kind: the public answer, a stage call, GET and POST reads of the feature
# store, the controller's status reads (and the assignments the gateways poll), a console page.
READS = [
    ("gateway", "GET", "/v1/recommendations?user_id=1&k=5", None),
    ("filtering", "POST", "/v1/filter", {"ids": ["1"], "columns": {}}),
    ("feature_store", "GET", "/v1/users/1/features", None),
    ("feature_store", "POST", "/v1/items/features", {"item_ids": ["1", "2"]}),
    ("feature_store", "GET", "/v1/popular?k=3", None),
    ("rollouts", "GET", "/v1/rollouts", None),
    ("rollouts", "GET", "/v1/assignments", None),
    ("console", "GET", "/api/health", None),
]


@pytest.mark.parametrize(("service", "method", "path", "body"), READS)
def test_a_read_needs_the_read_or_the_admin_token(
    protected: Protected, service: str, method: str, path: str, body: object
) -> None:
    url = protected.urls[service] + path

    def read(headers: dict[str, str] | None) -> httpx.Response:
        return httpx.request(method, url, json=body, headers=headers, timeout=30)

    missing = read(None)
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["detail"] == READ_HOW  # says how to authenticate
    assert read(WRONG).status_code == 403
    for token in (READ, ADMIN):
        answer = read(token)
        if service == "filtering":  # past the guard: the body's own check (columns missing)
            assert answer.status_code == 422, answer.text
        else:
            assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "service", ["gateway", "filtering", "ranking", "feature_store", "rollouts", "console"]
)
def test_health_and_metrics_stay_open(protected: Protected, service: str) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert protected.get(service, path).status_code == 200, (service, path)
    assert protected.get(service, "/openapi.json").status_code == 401  # a read like any other


def test_the_gateway_passes_the_token_to_its_stages_and_answers_whole(
    protected: Protected,
) -> None:
    """Every stage refuses a read without the token: a whole answer means every stage call
    carried it (a refused one would be a fallback, named in ``degraded_reasons``)."""
    body = protected.get("gateway", "/v1/recommendations?user_id=1&k=5&explain=true", READ).json()
    assert not body["degraded"], body["degraded_reasons"]
    assert len(body["items"]) == 5
    assert body["explain"]["items"][0]["heads"], "not ranked by the ranking service"


def test_the_gateway_follows_the_controller_with_the_token(protected: Protected) -> None:
    deadline = time.monotonic() + 20
    while True:
        check = protected.get("gateway", "/readyz").json()["checks"]["rollouts"]
        if check["ok"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert check["ok"] and check["reason"].startswith("assignments v"), check


def test_the_console_reads_the_services_with_its_token(protected: Protected) -> None:
    tried = protected.get("console", "/api/recommendations?user_id=1&k=5", READ)
    assert tried.status_code == 200, tried.text
    assert not tried.json()["answer"]["degraded"], tried.json()["answer"]
    overview = protected.get("console", "/api/rollouts", READ).json()
    assert overview["reachable"], overview
    monitors = protected.get("console", "/api/monitors", READ).json()
    assert monitors["available"], monitors  # the ranking service's /v1/monitors, read
    page = httpx.get(protected.urls["console"] + "/", timeout=10)
    assert page.status_code == 200  # the page itself holds no data: it loads without a token
