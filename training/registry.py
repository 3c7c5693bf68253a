"""MLflow logging and registration: all-or-nothing, with the alias moved last."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from shared.models.digest import DIGEST_TAG, folder_digest
from shared.models.registry import RegistryUnavailableError, check_reachable, tracking_uri

log = logging.getLogger(__name__)

EXPERIMENT = "cascade-training"
MODEL_PREFIX = "cascade-"


class RegistrationError(RuntimeError):
    """Registration failed; everything it had created was removed again."""


def _metric_key(k: str) -> str:
    return k.replace("@", "_at_")


def log_and_register(
    parts: dict[str, Path],
    report_files: list[Path],
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    uri: str | None = None,
    alias: str = "production",
) -> dict[str, str]:
    """Log a run with every artifact, then register one model version per part and move ``alias``.

    ``parts`` maps a name suffix (user-tower, item-index, ranker) to its finished folder. Returns
    {registered model name: version}.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = check_reachable(tracking_uri(uri))
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run() as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({_metric_key(k): float(v) for k, v in metrics.items() if v == v})
        mlflow.set_tags(tags)
        for name, folder in parts.items():
            mlflow.log_artifacts(str(folder), artifact_path=name)
        for f in report_files:
            mlflow.log_artifact(str(f), artifact_path="reports")
        return _register(client, run.info.run_id, run.info.artifact_uri, parts, tags, alias)


def register_version(
    folder: Path,
    part: str,
    tags: dict[str, str],
    uri: str | None = None,
    experiment: str = EXPERIMENT,
) -> str:
    """Log ``folder`` in a run, register it as a new version of ``cascade-<part>``, move no alias.

    For candidates a rollout will try: which version serves stays the rollout's decision. A
    failure deletes the version (and the registered model, when this call created it). Returns
    the new version.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = check_reachable(tracking_uri(uri))
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_experiment(experiment)
    name = MODEL_PREFIX + part
    created_models: list[str] = []
    created_versions: list[tuple[str, str]] = []
    with mlflow.start_run(run_name=f"register {name}") as run:
        mlflow.set_tags(tags)
        mlflow.log_artifacts(str(folder), artifact_path=part)
        try:
            if not _exists(client, name):
                client.create_registered_model(
                    name, description=f"Cascade {part} (see docs/training.md)"
                )
                created_models.append(name)
            mv = client.create_model_version(
                name, source=f"{run.info.artifact_uri}/{part}", run_id=run.info.run_id,
                tags={**tags, DIGEST_TAG: folder_digest(folder)},
            )  # fmt: skip
            created_versions.append((name, str(mv.version)))
            _wait_ready(client, name, str(mv.version))
        except Exception as e:
            _rollback(client, created_models, created_versions, {}, "")
            if isinstance(e, RegistryUnavailableError):
                raise
            raise RegistrationError(f"registration failed and was rolled back: {e}") from e
    log.info("registered %s v%s (no alias moved)", name, created_versions[0][1])
    return created_versions[0][1]


def _register(
    client: Any,
    run_id: str,
    artifact_uri: str,
    parts: dict[str, Path],
    tags: dict[str, str],
    alias: str,
) -> dict[str, str]:
    created_models: list[str] = []
    created_versions: list[tuple[str, str]] = []
    previous_alias: dict[str, str | None] = {}
    try:
        for part in parts:
            name = MODEL_PREFIX + part
            if not _exists(client, name):
                client.create_registered_model(
                    name, description=f"Cascade {part} (see docs/training.md)"
                )
                created_models.append(name)
            mv = client.create_model_version(
                name, source=f"{artifact_uri}/{part}", run_id=run_id,
                tags={**tags, DIGEST_TAG: folder_digest(parts[part])},
            )  # fmt: skip
            created_versions.append((name, str(mv.version)))
            _wait_ready(client, name, str(mv.version))
        # Move the alias only once every version exists, so serving never sees a mixed bundle.
        for name, version in created_versions:
            previous_alias[name] = _alias_version(client, name, alias)
            client.set_registered_model_alias(name, alias, version)
    except Exception as e:
        _rollback(client, created_models, created_versions, previous_alias, alias)
        if isinstance(e, RegistryUnavailableError):
            raise
        raise RegistrationError(f"registration failed and was rolled back: {e}") from e
    log.info("registered %s with alias %r", dict(created_versions), alias)
    return dict(created_versions)


def _exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def _alias_version(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _wait_ready(client: Any, name: str, version: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_model_version(name, version).status
        if status == "READY":
            return
        if status == "FAILED_REGISTRATION":
            raise RegistrationError(f"{name} v{version} failed registration")
        time.sleep(0.2)
    raise RegistrationError(f"{name} v{version} not READY after {timeout:.0f}s")


def _rollback(
    client: Any,
    models: list[str],
    versions: list[tuple[str, str]],
    previous: dict[str, str | None],
    alias: str,
) -> None:
    """Best effort: restore aliases, delete new versions and newly created models."""
    for name, old in previous.items():
        try:
            if old is None:
                client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, old)
        except Exception:  # noqa: BLE001 - keep rolling back the rest
            log.exception("could not restore alias %s@%s", name, alias)
    for name, version in versions:
        try:
            client.delete_model_version(name, version)
        except Exception:  # noqa: BLE001
            log.exception("could not delete %s v%s", name, version)
    for name in models:
        try:
            client.delete_registered_model(name)
        except Exception:  # noqa: BLE001
            log.exception("could not delete registered model %s", name)
