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
