"""What the controller does to the MLflow registry: check a candidate, move aliases, tag.

The registry is the source of truth: serving follows ``production``, ``canary`` and
``shadow`` (shared/models/model_set.py), so a rollout is a sequence of alias moves. A
candidate is checked exactly as serving would load it (downloaded, every ONNX file checked
against its feature schema and warmed up, user tower paired with its item index) before any
alias moves, so a refusal leaves the registry as it was. Every call is synchronous (the
MLflow client is); the controller runs them in a worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from shared.models.bundle import load_bundle
from shared.models.digest import ArtifactDigestError
from shared.models.locators import registered_name
from shared.models.registry import (
    ModelNotFoundError,
    RegistryUnavailableError,
    check_reachable,
    download_version,
)

log = logging.getLogger(__name__)
TAG_PREFIX = "cascade.rollout"


class CandidateRefused(ValueError):
    """The candidate cannot be rolled out; the message says why (nothing was changed)."""


class RegistryOps:
    """Alias moves and candidate checks against one MLflow server."""

    def __init__(self, uri: str, cache_dir: str | Path = ".cache/rollouts") -> None:
        self.uri = uri
        self.cache_dir = Path(cache_dir)

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient  # mlflow-skinny provides this

        check_reachable(self.uri)
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def reachable(self) -> tuple[bool, str]:
        """Whether the registry answers (the controller holds while it does not)."""
        try:
            check_reachable(self.uri, timeout=2.0)
            return True, "ok"
        except RegistryUnavailableError as exc:
            return False, str(exc)

    def alias_version(self, part: str, alias: str) -> str | None:
        """The version behind ``alias`` of ``part`` (None: the alias is not set)."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        try:
            return str(client.get_model_version_by_alias(registered_name(part), alias).version)
        except MlflowException:
            return None

    def check_candidate(self, candidate: dict[str, str]) -> dict[str, str]:
        """Check every part of ``candidate`` as serving would load it; its run ids by part.

        Raises CandidateRefused naming the part and the reason (RegistryUnavailableError when
        MLflow cannot be reached: nothing can be checked then).
        """
        paths: dict[str, Path] = {}
        runs: dict[str, str] = {}
        for part, version in candidate.items():
            name = registered_name(part)
            try:
                got = download_version(name, version, self.uri, self.cache_dir)
            except ModelNotFoundError as exc:
                raise CandidateRefused(f"{name} version {version} does not exist") from exc
            except ArtifactDigestError as exc:
                raise CandidateRefused(str(exc)) from exc
            paths[part] = got.path
            runs[part] = got.run_id or ""
        try:
            load_bundle(paths, tuple(candidate))
        except Exception as exc:  # ModelLoadError, FeatureSchemaError, ONNX errors: all refusals
            raise CandidateRefused(f"candidate fails the serving checks: {exc}") from exc
        return runs

    def set_alias(self, part: str, alias: str, version: str) -> None:
        """Point ``alias`` of ``part`` at ``version``."""
        self._client().set_registered_model_alias(registered_name(part), alias, version)
        log.info("alias moved", extra={"model": registered_name(part), "alias": alias,
                                       "version": version})  # fmt: skip

    def delete_alias(self, part: str, alias: str) -> None:
        """Remove ``alias`` from ``part`` (nothing to do when it is not set)."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        try:
            client.delete_registered_model_alias(registered_name(part), alias)
        except MlflowException as exc:
            if "not found" not in str(exc).lower() and "does not exist" not in str(exc).lower():
                raise
        log.info("alias removed", extra={"model": registered_name(part), "alias": alias})

    def tag(self, part: str, version: str, key: str, value: str) -> None:
        """Set ``cascade.rollout.<key>`` on a version (the registry's record of the rollout)."""
        self._client().set_model_version_tag(
            registered_name(part), version, f"{TAG_PREFIX}.{key}", value[:4000]
        )
