"""Session fixtures: the suite starts its own real Redis, Kafka-protocol broker and MLflow.

Set CASCADE_TEST_REDIS_URL / CASCADE_TEST_KAFKA_BOOTSTRAP / CASCADE_TEST_MLFLOW_URI to reuse
servers you already run; otherwise each is started on a free port and stopped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from deploy.local import infra
from deploy.local.processes import free_port, running
from tests.utils.servers import env_or_none, service_spec


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data and log folder of the servers this session starts."""
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def redis_url(server_dir: Path) -> Iterator[str]:
    """URL of a real Redis server."""
    external = env_or_none("CASCADE_TEST_REDIS_URL")
    if external:
        yield external
        return
    spec = infra.redis_spec(free_port(), server_dir / "redis")
    with running(spec, server_dir / "logs"):
        yield spec.url


@pytest.fixture(scope="session")
def kafka_bootstrap(server_dir: Path) -> Iterator[str]:
    """bootstrap servers of a real Kafka-protocol broker (Tansu)."""
    external = env_or_none("CASCADE_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    spec = infra.tansu_spec(free_port())
    with running(spec, server_dir / "logs"):
        yield spec.url


@pytest.fixture(scope="session")
def mlflow_tracking_uri(server_dir: Path) -> Iterator[str]:
    """Tracking URI of a real MLflow server (SQLite + local artifact folder)."""
    external = env_or_none("CASCADE_TEST_MLFLOW_URI")
    if external:
        yield external
        return
    spec = infra.mlflow_spec(free_port(), server_dir / "mlflow")
    with running(spec, server_dir / "logs"):
        yield spec.url


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
