"""The Kubernetes manifests: schema-valid offline, secure, and consistent with falproxy.

``kubernetes-validate`` ships the Kubernetes OpenAPI schemas inside the package, so strict
validation (unknown fields rejected) runs with no network and no cluster.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from falproxy import ProxyConfig
from falproxy.config.file import settings_from_mapping
from falproxy.config.settings import DEFAULT_METRICS_PATH, DEFAULT_ROUTE
from tests.support.procs import REPO

MANIFESTS = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"
EXPECTED_KINDS = {
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "ConfigMap",
    "Secret",
    "NetworkPolicy",
    "Ingress",
}


def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        found.extend((path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def by_kind(kind: str) -> dict[str, Any]:
    matches = [doc for _, doc in documents() if doc["kind"] == kind]
    assert len(matches) == 1, kind
    return matches[0]


def test_every_expected_kind_is_there() -> None:
    assert {doc["kind"] for _, doc in documents()} == EXPECTED_KINDS


@pytest.mark.parametrize("document", [doc for _, doc in documents()], ids=lambda doc: doc["kind"])
def test_manifest_is_valid_against_the_kubernetes_schema(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_validation_really_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(by_kind("Deployment"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = by_kind("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def test_pod_security_settings() -> None:
    pod = pod_spec()
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    writable = {m["mountPath"] for m in container()["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp"}


def test_probes_resources_and_grace() -> None:
    spec = container()
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(spec["resources"]["requests"])
    assert "memory" in spec["resources"]["limits"]
    assert "args" not in spec and "command" not in spec, "run the image's tested CMD"
    env = {item["name"]: item.get("value") for item in spec["env"]}
    grace = float(env["FALPROXY_SHUTDOWN_GRACE"])
    pre_stop = int(spec["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pre_stop + grace < pod_spec()["terminationGracePeriodSeconds"]


def test_key_comes_from_a_secret_with_a_placeholder() -> None:
    sources = container()["envFrom"]
    secret_name = by_kind("Secret")["metadata"]["name"]
    assert {"secretRef": {"name": secret_name}} in sources
    assert by_kind("Secret")["stringData"]["FAL_KEY"].startswith("REPLACE-WITH")
    assert not any(item["name"].startswith("FAL_KEY") for item in container()["env"])


def test_configmap_file_is_a_valid_falproxy_config() -> None:
    data = by_kind("ConfigMap")["data"]
    settings = settings_from_mapping(tomllib.loads(data["falproxy.toml"]), source="configmap")
    config = ProxyConfig(**settings)  # type: ignore[arg-type]
    assert config.allowed_endpoints, "an explicit endpoint allow-list"
    mount = next(m for m in container()["volumeMounts"] if m["name"] == "config")
    env = {item["name"]: item.get("value") for item in container()["env"]}
    assert env["FALPROXY_CONFIG"] == f"{mount['mountPath']}/falproxy.toml"


def test_selectors_and_ports_line_up() -> None:
    labels = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "NetworkPolicy", "PodDisruptionBudget"):
        document = by_kind(kind)
        selector = document["spec"].get("podSelector") or document["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), kind
    assert by_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == "falproxy"
    assert by_kind("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    assert by_kind("PodDisruptionBudget")["spec"]["minAvailable"] >= 1
    ports = {p["containerPort"] for p in container()["ports"]}
    ingress_ports = {p["port"] for p in by_kind("NetworkPolicy")["spec"]["ingress"][0]["ports"]}
    assert ports == ingress_ports == {8080}
    assert set(by_kind("NetworkPolicy")["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_metrics_are_scraped_from_pods_never_published() -> None:
    """Issue 12: /metrics is not on the public side; Prometheus scrapes the pods."""
    service = by_kind("Service")["spec"]
    assert service.get("type", "ClusterIP") == "ClusterIP", "the Service is not published"
    rules = by_kind("Ingress")["spec"]["rules"]
    paths = [(p["path"], p["pathType"]) for rule in rules for p in rule["http"]["paths"]]
    assert paths == [(DEFAULT_ROUTE, "Exact")], "only the proxy route is public"
    annotations = by_kind("Deployment")["spec"]["template"]["metadata"]["annotations"]
    port = int(annotations["prometheus.io/port"])
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == DEFAULT_METRICS_PATH
    assert port in {p["containerPort"] for p in container()["ports"]}
    allowed = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: rule["ports"]
        for rule in by_kind("NetworkPolicy")["spec"]["ingress"]
        for peer in rule["from"]
    }
    assert {p["port"] for p in allowed["monitoring"]} == {port}, "Prometheus can reach pods"
