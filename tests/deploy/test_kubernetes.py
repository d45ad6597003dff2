"""The Kubernetes manifests: schema-valid offline, secure, and consistent with falproxy.

``kubernetes-validate`` ships the Kubernetes OpenAPI schemas inside the package, so strict
validation (unknown fields rejected) runs with no network and no cluster; deploy/README.md
names the exact command, and a test runs that very line.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from falproxy import ProxyConfig
from falproxy.config.file import settings_from_mapping
from falproxy.config.settings import DEFAULT_METRICS_PATH, DEFAULT_ROUTE
from falproxy.core.origins import parse_origin
from tests.deploy.manifests import (
    DEPLOY,
    EXAMPLE_SECRET,
    MANIFESTS,
    PLACEHOLDER_MARK,
    applied_documents,
    applied_files,
    by_kind,
    example_secret,
    strings,
)
from tests.support.procs import REPO

KUBERNETES_VERSION = "1.30"
EXPECTED_KINDS = {
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "ConfigMap",
    "NetworkPolicy",
    "Ingress",
}
# Where the operator documentation shows kubectl and the offline check.
DEPLOY_DOCS = (DEPLOY / "README.md", REPO / "docs" / "deployment.md")


def shipped_documents() -> list[dict[str, Any]]:
    """What the folder applies, plus the example Secret (validated, never applied)."""
    return [*applied_documents(), example_secret()]


def test_every_expected_kind_is_there() -> None:
    assert {doc["kind"] for doc in applied_documents()} == EXPECTED_KINDS


@pytest.mark.parametrize("document", shipped_documents(), ids=lambda doc: doc["kind"])
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


def test_key_comes_from_a_secret_shown_by_the_example() -> None:
    sources = container()["envFrom"]
    secret_name = example_secret()["metadata"]["name"]
    assert {"secretRef": {"name": secret_name}} in sources
    assert example_secret()["stringData"]["FAL_KEY"].startswith(PLACEHOLDER_MARK)
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


# --- issue 19 item 10: applying the folder as documented is safe ----------------------


def documented_kubectl_applies() -> list[list[str]]:
    """The ``-f`` paths of every ``kubectl apply`` line in the operator docs' shell blocks."""
    applies = []
    for doc in DEPLOY_DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if words[:2] == ["kubectl", "apply"]:
                applies.append([after for flag, after in pairwise(words) if flag == "-f"])
    return applies


def test_the_docs_apply_the_whole_folder() -> None:
    applies = documented_kubectl_applies()
    assert ["deploy/kubernetes/"] in applies, applies
    assert all(paths for paths in applies), "every documented kubectl apply names its files"


def test_applying_the_folder_as_documented_creates_nothing_with_a_placeholder() -> None:
    """Issue 19 item 10: ``kubectl apply -f deploy/kubernetes/`` must not replace a real key."""
    for paths in documented_kubectl_applies():
        for path in paths:
            for document in applied_documents(REPO / path):
                name = f"{path}: {document['kind']}/{document['metadata']['name']}"
                assert document["kind"] != "Secret", f"{name}: secrets are created out of band"
                placeholders = [s for s in strings(document) if PLACEHOLDER_MARK in s]
                assert not placeholders, f"{name} would be created with {placeholders}"


def test_kubectl_reads_every_manifest_file_in_the_folder() -> None:
    """The rule above holds for what kubectl really reads: .yaml, .yml and .json files."""
    assert {p.suffix for p in MANIFESTS.iterdir()} <= {".yaml"}, "only manifests in the folder"
    assert len(applied_files()) == len(list(MANIFESTS.iterdir()))
    assert EXAMPLE_SECRET.parent != MANIFESTS and EXAMPLE_SECRET.exists()


def test_the_example_secret_is_shown_but_never_applied() -> None:
    secret = example_secret()
    assert secret["kind"] == "Secret"
    assert all(PLACEHOLDER_MARK in value for value in secret["stringData"].values())
    assert EXAMPLE_SECRET.name not in {p.name for p in applied_files()}
    readme = (DEPLOY / "README.md").read_text()
    assert f"kubernetes/{EXAMPLE_SECRET.name}" not in readme
    assert EXAMPLE_SECRET.name in readme


# --- issue 19 item 11: the public origin and TLS, next to the host ---------------------


def ingress_hosts() -> list[str]:
    return [rule["host"] for rule in by_kind("Ingress")["spec"]["rules"]]


def test_the_ingress_terminates_tls_for_every_host() -> None:
    tls = by_kind("Ingress")["spec"]["tls"]
    covered = {host for entry in tls for host in entry["hosts"]}
    assert covered == set(ingress_hosts())
    assert all(entry["secretName"] for entry in tls)


def test_the_configmap_lists_the_ingress_public_origin() -> None:
    """Without it, browsers' sockets through the TLS ingress get 403 (issue 19 item 11)."""
    listed = by_kind("ConfigMap")["data"]["FALPROXY_CORS_ORIGINS"].split(",")
    origins = {parse_origin(entry.strip()) for entry in listed}
    assert None not in origins, listed
    assert {parse_origin(f"https://{host}") for host in ingress_hosts()} <= origins


def test_the_readiness_comment_claims_no_redis_check() -> None:
    """Issue 19 item 9: the comment said readiness covers Redis; /readyz has no such check."""
    text = (MANIFESTS / "deployment.yaml").read_text()
    comment = text[: text.index("livenessProbe:")].rsplit("resources:", 1)[1]
    assert "Redis is reachable" not in " ".join(comment.replace("#", " ").split()), comment
    assert "docs/operations.md" in comment


# --- issue 19 item 12: the documented offline check, run as documented -----------------


def documented_validate_command() -> str:
    (line,) = [
        line.strip()
        for line in (DEPLOY / "README.md").read_text().splitlines()
        if line.strip().startswith("kubernetes-validate ")
    ]
    assert "--strict" in line.split()
    return line


def run_documented(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The line as a user's shell runs it, with the test extra's scripts on PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_documented_offline_check_passes() -> None:
    command = documented_validate_command()
    assert f"-k {KUBERNETES_VERSION}" in command, "the version the schema tests above use"
    done = run_documented(command, REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = set(re.findall(r"INFO (\S+) passed", done.stdout + done.stderr))
    expected = {str(p.relative_to(REPO)) for p in applied_files()}
    assert expected | {str(EXAMPLE_SECRET.relative_to(REPO))} == passed


def test_the_documented_offline_check_fails_on_a_misspelt_field(tmp_path: Path) -> None:
    copied = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copied)
    deployment = copied / "kubernetes" / "deployment.yaml"
    text = deployment.read_text()
    assert "readOnlyRootFilesystem" in text
    deployment.write_text(text.replace("readOnlyRootFilesystem", "readOnlyRootFilesytem"))
    done = run_documented(documented_validate_command(), tmp_path)
    assert done.returncode != 0
    assert "readOnlyRootFilesytem" in done.stdout + done.stderr
