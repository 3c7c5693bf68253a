"""deploy/k8s/cascade.yaml cannot be applied here (no cluster), so it is validated instead.

Checks: the committed file is what ``python -m deploy.k8s.generate`` writes from
docker-compose.yml; every document passes the Kubernetes OpenAPI schemas (kubernetes-validate,
offline, strict: an unknown field fails); every service the local runtime starts is deployed
with the variables its settings read and connection settings that name an in-cluster service;
the pods run non-root on a read-only root filesystem and read the admin token from the Secret;
the stateful parts write to persistent volumes; ingress is denied unless a policy admits it.
"""

from __future__ import annotations

import copy
import importlib
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.k8s import generate
from deploy.local.stack import SERVICES
from shared.platform.settings import env_names
from tests.integration.test_compose import _connection_fields

K8S_VERSION = "1.30"
EXTERNAL = {"redis", "kafka", "mlflow", "prometheus"}  # expected in the cluster, not deployed here


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(generate.MANIFEST.read_text()) if d]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_manifest_is_generated_from_compose() -> None:
    assert generate.MANIFEST.read_text() == generate.render(), (
        "deploy/k8s/cascade.yaml is stale: run python -m deploy.k8s.generate"
    )


def test_every_document_passes_the_kubernetes_schemas(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_wrong_field(docs: list[dict[str, Any]]) -> None:
    """The validation above could fail: a misspelt field and a wrong type are refused."""
    deployment = copy.deepcopy(_by_kind(docs, "Deployment")["gateway"])
    _container(deployment)["readinessProbes"] = _container(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = copy.deepcopy(_by_kind(docs, "Deployment")["gateway"])
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_every_runtime_service_is_deployed_with_what_its_settings_read(
    docs: list[dict[str, Any]],
) -> None:
    deployments = {d["metadata"]["labels"]["cascade.service"]: d
                   for d in _by_kind(docs, "Deployment").values()}  # fmt: skip
    services = set(_by_kind(docs, "Service")) | EXTERNAL
    assert set(SERVICES) <= set(deployments), set(SERVICES) - set(deployments)
    for label, deployment in deployments.items():
        settings_cls = importlib.import_module(f"services.{label}.settings").Settings
        accepted = {n for f in settings_cls.model_fields for n in env_names(settings_cls, f)}
        env = {e["name"]: e for e in _container(deployment)["env"]}
        unknown = {
            k for k in env if k.startswith("CASCADE_") and k not in accepted | {"CASCADE_LOG_JSON"}
        }
        assert not unknown, f"{label}: variables its settings do not read: {sorted(unknown)}"
        config = _by_kind(docs, "ConfigMap")[generate.PLATFORM_CONFIG]["data"]
        for field in _connection_fields(settings_cls):
            given = [env[n] for n in env_names(settings_cls, field) if n in env]
            assert given, f"{label}: {field} not set (a loopback default would not work in a pod)"
            value = given[0].get("value") or config[given[0]["valueFrom"]["configMapKeyRef"]["key"]]
            host = re.split(r"[:/]", value.split("://", 1)[-1])[0]
            assert host in services, f"{label}: {field}={value} names no Service"
    gateway = {e["name"] for e in _container(deployments["gateway"])["env"]}
    for stage in ("CANDIDATE_GENERATION", "FILTERING", "RANKING", "RERANKING"):
        assert f"CASCADE_GATEWAY_{stage}_URL" in gateway  # without them: every answer degraded


def test_pods_run_non_root_read_only_with_the_token_from_the_secret(
    docs: list[dict[str, Any]],
) -> None:
    for name, deployment in _by_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert (
            pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"]
        )
        assert pod["automountServiceAccountToken"] is False
        container = _container(deployment)
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        token = env["CASCADE_ADMIN_TOKEN_FILE"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        secret = volumes[mounts[token.rsplit("/", 1)[0]]]["secret"]
        assert secret["secretName"] == generate.TOKEN_SECRET, name
        # the read token: an optional Secret, used once the ConfigMap names its file
        read = volumes[mounts[generate.READ_TOKEN_DIR]]["secret"]
        assert read == {"secretName": generate.READ_TOKEN_SECRET, "defaultMode": 0o440,
                        "optional": True}, name  # fmt: skip
        ref = next(e for e in container["env"] if e["name"] == "CASCADE_READ_TOKEN_FILE")
        assert ref["valueFrom"]["configMapKeyRef"]["name"] == generate.PLATFORM_CONFIG, name
        assert "/home/cascade" in mounts and "/tmp" in mounts, f"{name}: nowhere to write"


def test_stateful_parts_write_to_persistent_volumes(docs: list[dict[str, Any]]) -> None:
    claims = _by_kind(docs, "PersistentVolumeClaim")
    deployments = _by_kind(docs, "Deployment")
    for name, setting in (("offline-sink", "CASCADE_OFFLINE_SINK_DATA_DIR"),
                          ("rollouts", "CASCADE_ROLLOUTS_STATE_PATH")):  # fmt: skip
        deployment = deployments[name]
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        path = {e["name"]: e.get("value") for e in _container(deployment)["env"]}[setting]
        mounts = {m["mountPath"]: m["name"] for m in _container(deployment)["volumeMounts"]}
        volume_name = next(v for p, v in mounts.items() if path.startswith(p + "/") or path == p)
        pod_volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert pod_volumes[volume_name]["persistentVolumeClaim"]["claimName"] in claims


def test_ingress_is_denied_unless_a_policy_admits_it(docs: list[dict[str, Any]]) -> None:
    policies = _by_kind(docs, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    for name in _by_kind(docs, "Deployment"):
        rule = policies[f"allow-{name}"]["spec"]["ingress"][0]
        sources = {s.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                   for s in rule.get("from", [])}  # fmt: skip
        if name in generate.PUBLIC:
            assert "from" not in rule
        else:
            assert "prometheus" in sources and "redis" not in sources
    ranking = policies["allow-ranking"]["spec"]["ingress"][0]["from"]
    assert {s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in ranking} == {
        "gateway", "console", "prometheus"
    }  # fmt: skip
