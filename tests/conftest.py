"""Session fixtures: the suite starts its own real Redis, Kafka-protocol broker and MLflow.

Set CASCADE_TEST_REDIS_URL / CASCADE_TEST_KAFKA_BOOTSTRAP / CASCADE_TEST_MLFLOW_URI to reuse
servers you already run; otherwise each is started on a free port and stopped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from deploy.local import infra
from deploy.local.processes import ProcessSpec, free_port, running
from tests.integration.serving_fixtures import live_stack, registered_models, trained_models
from tests.utils.auth import TEST_ADMIN_TOKEN
from tests.utils.servers import env_or_none, service_spec

# Writes need the admin token (shared/platform/auth.py); every service the suite starts, as a
# process or in this one, inherits this one. Tests send tests.utils.auth.ADMIN with writes.
os.environ["CASCADE_ADMIN_TOKEN"] = TEST_ADMIN_TOKEN
os.environ.pop("CASCADE_ADMIN_TOKEN_FILE", None)

# The tiny trained bundle, its registration and the serving stack on it are session fixtures
# defined once, here: a module importing them itself would get its own copies (trained,
# registered and started again; the browser and the serving tests share one stack).
__all__ = ["live_stack", "registered_models", "trained_models"]


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data and log folder of the servers this session starts."""
    return tmp_path_factory.mktemp("servers")


def _server(env_name: str, spec: Callable[[], ProcessSpec], log_dir: Path) -> Iterator[str]:
    """The address given by ``env_name``, or a server of ``spec`` started for the session."""
    external = env_or_none(env_name)
    if external:
        yield external
        return
    started = spec()
    with running(started, log_dir):
        yield started.url


@pytest.fixture(scope="session")
def redis_url(server_dir: Path) -> Iterator[str]:
    """URL of a real Redis server."""
    spec = lambda: infra.redis_spec(free_port(), server_dir / "redis")  # noqa: E731
    yield from _server("CASCADE_TEST_REDIS_URL", spec, server_dir / "logs")


@pytest.fixture(scope="session")
def redis_cluster_url(server_dir: Path) -> Iterator[str]:
    """Startup URL of a real local Redis Cluster: three primaries, no replicas (started on the
    first test that asks; CASCADE_TEST_REDIS_CLUSTER_URL reuses one you run)."""
    external = env_or_none("CASCADE_TEST_REDIS_CLUSTER_URL")
    if external:
        yield external
        return
    with infra.running_redis_cluster(server_dir / "redis-cluster", server_dir / "logs") as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap(server_dir: Path) -> Iterator[str]:
    """bootstrap servers of a real Kafka-protocol broker (Tansu)."""
    spec = lambda: infra.tansu_spec(free_port())  # noqa: E731
    yield from _server("CASCADE_TEST_KAFKA_BOOTSTRAP", spec, server_dir / "logs")


@pytest.fixture(scope="session")
def mlflow_tracking_uri(server_dir: Path) -> Iterator[str]:
    """Tracking URI of a real MLflow server (SQLite + local artifact folder)."""
    spec = lambda: infra.mlflow_spec(free_port(), server_dir / "mlflow")  # noqa: E731
    yield from _server("CASCADE_TEST_MLFLOW_URI", spec, server_dir / "logs")


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a freshly flushed database."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def unique_topic() -> str:
    """A topic name no other test uses (the broker is shared by the session)."""
    return f"test-{uuid.uuid4().hex[:12]}"


ServiceStarter = Callable[..., str]


@pytest.fixture
def start_service(server_dir: Path) -> Iterator[ServiceStarter]:
    """Start Cascade services as real processes; returns their base URL; stops them after."""
    with ExitStack() as stack:

        def starter(
            name: str, env: dict[str, str] | None = None, require_ready: bool = False
        ) -> str:
            spec = service_spec(name, env, require_ready=require_ready)
            stack.enter_context(running(spec, server_dir / "logs"))
            return spec.url

        yield starter


# ---- how the suite is split over two pytest-xdist workers (`make test`: -n 2) ----------------
# Each module is one unit of work (its module fixtures start once), and the modules on the
# session's serving stack are one unit together (the stack starts once). The longest units are
# handed out first, so the two workers finish close together: the rollouts module (its own
# stack and minutes of simulated traffic), then the serving-stack modules, then the local
# runtime. (pytest-xdist's own `loadgroup` marks do not group under pytest 9.2, which keeps
# node ids elsewhere, so the scheduler below groups by module path.)
LIVE_STACK_MODULES = (
    "tests/integration/test_contracts.py",
    "tests/integration/test_serving_stack.py",
    "tests/browser/",
)
FIRST = ("tests/integration/test_rollouts_and_experiments.py", "live_stack",
         "tests/integration/test_local_runtime.py")  # fmt: skip


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, or ``live_stack``."""
    module = nodeid.split("::", 1)[0]
    return "live_stack" if module.startswith(LIVE_STACK_MODULES) else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Schedule whole work units (``work_unit``) in collected order."""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnits(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the work units longest first (the collected order is kept within each); a module
    on the serving stack missing from LIVE_STACK_MODULES would start a second stack."""
    for item in items:
        module = item.path.relative_to(config.rootpath).as_posix()
        if "live_stack" in getattr(item, "fixturenames", ()) and work_unit(module) != "live_stack":
            raise pytest.UsageError(f"{module} uses live_stack: add it to LIVE_STACK_MODULES")

    def rank(item: pytest.Item) -> int:
        unit = work_unit(item.nodeid)
        return FIRST.index(unit) if unit in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the collected order within each rank
