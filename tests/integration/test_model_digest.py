"""Model artifacts are checked against the digest recorded at registration (real MLflow).

A version is registered with ``training.registry.register_version`` (which tags it with the
folder's digest); its files are then changed behind the registry's back, in the artifact store
and in a serving cache, and downloads must refuse or heal instead of loading other bytes.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from shared.models.digest import DIGEST_TAG, ArtifactDigestError, folder_digest
from shared.models.registry import download_version
from training.registry import register_version

pytestmark = pytest.mark.integration


def _folder(root: Path, marker: str) -> Path:
    folder = root / "ranker"
    (folder / "sub").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"bundle_id": marker}))
    (folder / f"weights-{marker}.bin").write_bytes(b"\x01" * 4096)
    (folder / "sub" / "meta.json").write_text("{}")
    return folder


def test_folder_digest_sees_every_change(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "a")
    before = folder_digest(folder)
    assert before.startswith("sha256:") and folder_digest(folder) == before
    (folder / "sub" / "meta.json").write_text('{"x": 1}')
    changed = folder_digest(folder)
    (folder / "sub" / "meta.json").rename(folder / "sub" / "meta2.json")
    renamed = folder_digest(folder)
    (folder / "extra").write_text("")
    added = folder_digest(folder)
    assert len({before, changed, renamed, added}) == 4


def test_a_download_is_verified_and_a_changed_artifact_refused(
    tmp_path: Path, mlflow_tracking_uri: str, server_dir: Path
) -> None:
    marker = uuid.uuid4().hex[:10]
    folder = _folder(tmp_path / "src", marker)
    part = f"digest-test-{marker}"
    version = register_version(folder, part, {"bundle_id": marker}, uri=mlflow_tracking_uri)
    name = f"cascade-{part}"
    cache = tmp_path / "cache"
    got = download_version(name, version, mlflow_tracking_uri, cache)
    assert got.tags[DIGEST_TAG] == folder_digest(folder) == folder_digest(got.path)

    # A changed cached copy is fetched again, not loaded.
    cached = got.path / f"weights-{marker}.bin"
    cached.write_bytes(b"\x02" * 4096)
    healed = download_version(name, version, mlflow_tracking_uri, cache)
    assert (healed.path / f"weights-{marker}.bin").read_bytes() == b"\x01" * 4096

    # Changed in the artifact store: refused, and nothing lands in the cache.
    stored = next((server_dir / "mlflow").rglob(f"weights-{marker}.bin"))
    stored.write_bytes(b"\x03" * 4096)
    fresh = tmp_path / "fresh-cache"
    with pytest.raises(ArtifactDigestError, match="do not match the registered digest"):
        download_version(name, version, mlflow_tracking_uri, fresh)
    assert not (fresh / name / version).exists()


def test_a_version_without_a_recorded_digest_is_not_loaded(
    tmp_path: Path, mlflow_tracking_uri: str
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    marker = uuid.uuid4().hex[:10]
    folder = _folder(tmp_path / "src", marker)
    name = f"cascade-digest-untagged-{marker}"
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    client = MlflowClient(tracking_uri=mlflow_tracking_uri, registry_uri=mlflow_tracking_uri)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), artifact_path="ranker")
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"{run.info.artifact_uri}/ranker", run.info.run_id)
    with pytest.raises(ArtifactDigestError, match=f"no {DIGEST_TAG} tag"):
        download_version(name, str(mv.version), mlflow_tracking_uri, tmp_path / "cache")
