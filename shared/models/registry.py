"""Serving-side model loading: from the MLflow registry (alias) or from a plain local folder.

Needs mlflow-skinny only (never torch or full mlflow). A model folder holds the files listed in
docs/training.md plus ``manifest.json`` and ``feature_schema.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


class RegistryUnavailableError(RuntimeError):
    """The MLflow tracking server cannot be reached; the message names the setting."""


class ModelNotFoundError(LookupError):
    """No model version behind the requested alias, or a local folder that is not a model."""


@dataclass
class LocalModel:
    """A model's files on local disk and where they came from."""

    name: str
    path: Path
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def manifest(self) -> dict[str, Any]:
        """The bundle manifest (bundle_id, data fingerprint, metrics summary, ...)."""
        p = self.path / "manifest.json"
        return json.loads(p.read_text()) if p.exists() else {}


def tracking_uri(uri: str | None = None) -> str:
    """Explicit URI, else $MLFLOW_TRACKING_URI, else the local default."""
    return uri or os.environ.get(TRACKING_URI_ENV) or DEFAULT_TRACKING_URI


def check_reachable(uri: str | None = None, timeout: float = 3.0) -> str:
    """Probe the server's /health quickly (MLflow's own client retries for minutes)."""
    uri = tracking_uri(uri)
    if not uri.startswith(("http://", "https://")):
        return uri  # file/sqlite stores: nothing to probe
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            if r.status == 200:
                return uri
            raise RegistryUnavailableError(f"MLflow at {uri} answered /health with HTTP {r.status}")
    except (urllib.error.URLError, OSError) as e:
        raise RegistryUnavailableError(
            f"MLflow tracking server unreachable at {uri} (setting {TRACKING_URI_ENV}): {e}"
        ) from e


def load_local(path: str | Path, name: str | None = None) -> LocalModel:
    """A model from a plain folder (e.g. models/ranker written by `make train`)."""
    p = Path(path)
    manifest = p / "manifest.json"
    if not manifest.is_file():
        raise ModelNotFoundError(f"not a model folder (no manifest.json): {p}")
    try:
        m = json.loads(manifest.read_text())
    except json.JSONDecodeError as e:
        raise ModelNotFoundError(f"corrupt manifest file {manifest}: {e}") from e
    tags = {k: str(v) for k, v in m.items() if isinstance(v, str | int | float)}
    return LocalModel(name or p.name, p, "local", m.get("run_id"), tags)


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient  # mlflow-skinny provides this

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def current_version(model_name: str, alias: str = "production", uri: str | None = None) -> str:
    """Version number behind ``alias`` (cheap: one registry call) for hot-swap polling."""
    return str(_by_alias(model_name, alias, uri).version)


def version_tags(
    model_name: str, alias: str = "production", uri: str | None = None
) -> dict[str, str]:
    """Tags of the version behind ``alias`` (its digest, its bundle id...)."""
    return {k: str(v) for k, v in (_by_alias(model_name, alias, uri).tags or {}).items()}


def _by_alias(model_name: str, alias: str, uri: str | None) -> Any:
    uri = check_reachable(uri)
    try:
        return _client(uri).get_model_version_by_alias(model_name, alias)
    except Exception as e:  # MlflowException for unknown model/alias
        raise ModelNotFoundError(
            f"no version of {model_name!r} behind alias {alias!r} at {uri}: {e}"
        ) from e


def resolve_and_download(
    model_name: str,
    alias: str = "production",
    uri: str | None = None,
    cache_dir: str | Path = ".cache/models",
) -> LocalModel:
    """Download the version behind ``alias`` into ``cache_dir/<name>/<version>`` (cached)."""
    uri = check_reachable(uri)
    client = _client(uri)
    try:
        mv = client.get_model_version_by_alias(model_name, alias)
    except Exception as e:
        raise ModelNotFoundError(
            f"no version of {model_name!r} behind alias {alias!r} at {uri}: {e}"
        ) from e
    got = _download(mv, model_name, uri, cache_dir)
    _remember_alias(cache_dir, alias, got)
    return got


def _alias_record(cache_dir: str | Path, model_name: str, alias: str) -> Path:
    return Path(cache_dir) / model_name / f"@{alias}.json"


def _remember_alias(cache_dir: str | Path, alias: str, got: LocalModel) -> None:
    """Note which version ``alias`` resolved to, for a start while the registry is down."""
    record = {"version": got.version, "run_id": got.run_id, "tags": got.tags}
    path = _alias_record(cache_dir, got.name, alias)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one file per alias, replaced whole
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def cached_alias(
    model_name: str, alias: str = "production", cache_dir: str | Path = ".cache/models"
) -> LocalModel:
    """The version ``alias`` last resolved to, from the download cache, checked against the
    digest recorded at registration; ModelNotFoundError when there is no such verified copy.

    What a service starts from when the registry is unreachable (``ModelSet``)."""
    from shared.models.digest import DIGEST_TAG, ArtifactDigestError, verify_folder

    path = _alias_record(cache_dir, model_name, alias)
    try:
        record = json.loads(path.read_text())
        version, tags = str(record["version"]), dict(record.get("tags") or {})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelNotFoundError(f"no cached {model_name!r} for alias {alias!r}: {e}") from e
    dest = Path(cache_dir) / model_name / version
    try:
        verify_folder(dest, tags.get(DIGEST_TAG), f"cached {model_name} version {version}")
    except (ArtifactDigestError, OSError) as e:
        raise ModelNotFoundError(str(e)) from e
    return LocalModel(model_name, dest, version, record.get("run_id"), tags)


def download_version(
    model_name: str, version: str, uri: str | None = None, cache_dir: str | Path = ".cache/models"
) -> LocalModel:
    """Download one version by number (what a rollout checks before it moves any alias)."""
    uri = check_reachable(uri)
    try:
        mv = _client(uri).get_model_version(model_name, version)
    except Exception as e:
        raise ModelNotFoundError(f"{model_name!r} has no version {version} at {uri}: {e}") from e
    return _download(mv, model_name, uri, cache_dir)


def _download(mv: Any, model_name: str, uri: str, cache_dir: str | Path) -> LocalModel:
    """The version's files in the cache, downloaded unless a verified copy is there already;
    ArtifactDigestError when what the registry hands out is not what was registered."""
    from shared.models.digest import DIGEST_TAG, ArtifactDigestError, verify_folder

    tags = dict(mv.tags or {})
    expected = tags.get(DIGEST_TAG)
    what = f"{model_name} version {mv.version}"
    dest = Path(cache_dir) / model_name / str(mv.version)
    if (dest / "manifest.json").is_file():
        try:
            verify_folder(dest, expected, what)
            return LocalModel(model_name, dest, str(mv.version), mv.run_id, tags)
        except ArtifactDigestError:  # a changed or half-written cache: fetch it again
            shutil.rmtree(dest)
    from mlflow.artifacts import download_artifacts

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=dest.parent))
    try:
        got = Path(download_artifacts(artifact_uri=mv.source, dst_path=str(tmp), tracking_uri=uri))
        verify_folder(got, expected, what)  # before it is visible in the cache
        if dest.exists():
            shutil.rmtree(dest)
        got.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return LocalModel(model_name, dest, str(mv.version), mv.run_id, tags)
