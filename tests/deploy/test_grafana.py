"""The dashboard and alert rules in deploy/grafana/ name only what /metrics really exports.

A live ``falproxy serve`` (real Redis, the fake fal, one fal host mapped to a closed port)
gets calls of every outcome (ok, refused, limited, upstream error, client gone; HTTP and a
WebSocket) and a Redis outage; then its ``/metrics`` is scraped and every expression of the
dashboard and of the rules is held against it: each metric must be exported, each label
carried by that metric (or added by Prometheus to every target: ``job``, ``instance``), and
each matched value seen. The rules also pass ``promtool check rules`` where promtool is
installed (Debian's ``prometheus`` package), and a structural check everywhere. The compose
file's Prometheus and Grafana cannot run here (no container engine): their files are
checked for what each refers to.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.deploy.manifests import DEPLOY
from tests.support.ports import free_port
from tests.support.procs import falproxy_serve, proxy_env, upstreams_env
from tests.support.promql import Names, names
from tests.support.redis_support import running_redis
from tests.support.ws_helpers import pack, relay_url, unpack

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "falproxy-dashboard.json"
RULES = GRAFANA / "falproxy-alerts.yml"
PROMETHEUS_CONFIG = GRAFANA / "prometheus.yml"
# Labels Prometheus attaches to every scraped series (its target labels).
TARGET_LABELS = frozenset({"job", "instance"})
# What the issue asks the rules to watch (issue 19 item 13), by alert name.
REQUIRED_ALERTS = {
    "FalproxyUpstreamErrors": "falproxy_requests_total",
    "FalproxyServerErrors": "falproxy_requests_total",
    "FalproxyRedisDegraded": "falproxy_rate_limit_storage_errors_total",
    "FalproxySaturated": "falproxy_open_calls",
}
# What the dashboard must show, by a metric its panels must use.
REQUIRED_PANEL_METRICS = {
    "falproxy_requests_total",
    "falproxy_request_duration_seconds_bucket",
    "falproxy_open_calls",
    "falproxy_rate_limited_total",
    "falproxy_rate_limit_storage_errors_total",
}
ROUTE = "/api/fal/proxy"
LIMITED = "fal-ai/limited/model"
ENDPOINTS = "fal-ai/flux/**,fake/**,fal-ai/limited/**,fal-ai/fast-lcm-diffusion/**"


# --- the files -----------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def expressions() -> dict[str, str]:
    """Every PromQL expression shipped, by where it is."""
    found = {f"rule {rule['alert']}": rule["expr"] for rule in rules()}
    for panel in panels():
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    return found


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def mounts(service: str) -> dict[str, Path]:
    """A compose service's bind mounts: container path -> file in deploy/."""
    found = {}
    for volume in compose()["services"][service]["volumes"]:
        source, target = volume.split(":")[:2]
        found[target] = DEPLOY / source
    return found


def test_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus); parser check only")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_have_the_shape_prometheus_loads() -> None:
    """The parser check, wherever promtool is missing: fields, durations, balanced PromQL."""
    loaded = yaml.safe_load(RULES.read_text())
    assert set(loaded) == {"groups"}
    for group in loaded["groups"]:
        assert set(group) == {"name", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_]\w*", rule["alert"])
            assert re.fullmatch(r"\d+[smhd]", rule["for"])
            assert rule["labels"]["severity"] and rule["annotations"]["summary"]
            expr = rule["expr"]
            for opening, closing in ("()", "{}", "[]"):
                assert expr.count(opening) == expr.count(closing), (rule["alert"], opening)
            assert not names(expr).unknown_words, (rule["alert"], names(expr).unknown_words)
    alerts = {rule["alert"]: rule["expr"] for rule in rules()}
    for alert, metric in REQUIRED_ALERTS.items():
        assert metric in names(alerts[alert]).metrics, alert


def test_annotations_use_only_labels_the_expression_keeps() -> None:
    for rule in rules():
        used = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        assert used <= names(rule["expr"]).grouping, (rule["alert"], used)


def test_dashboard_panels_are_well_formed() -> None:
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"] and all(target["expr"] for target in panel["targets"])
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    used = set().union(*(names(expr).metrics for expr in expressions().values()))
    assert used >= REQUIRED_PANEL_METRICS


def test_compose_provisions_prometheus_and_grafana() -> None:
    services = compose()["services"]
    prometheus = mounts("prometheus")
    assert prometheus["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for rule_file in config["rule_files"]:  # relative to the config file's folder
        assert prometheus[f"/etc/prometheus/{rule_file}"] == GRAFANA / rule_file
    (job,) = config["scrape_configs"]
    replicas = {name for name in services if name.startswith("falproxy-")}
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    assert targets == {f"{name}:8080" for name in replicas}, "every replica, never nginx"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    grafana = mounts("grafana")
    provisioning = grafana["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    variable = next(v for v in dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == source["uid"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "falproxy.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    assert grafana[f"{folder}/{DASHBOARD.name}"] == DASHBOARD
    for service in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[service]["ports"])
        assert all(path.exists() for path in mounts(service).values()), service


# --- the live proxy --------------------------------------------------------------------


@dataclass
class Exported:
    """What one scrape shows: label names per sample name, values seen per label."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def add(self, name: str, labels: dict[str, str]) -> None:
        self.labels.setdefault(name, set()).update(labels)
        for label, value in labels.items():
            self.values.setdefault((name, label), set()).add(value)


def exported(text: str) -> Exported:
    seen = Exported()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            seen.add(sample.name, sample.labels)
    return seen


def every_outcome(url: str, fake_url: str, stop_redis: Any) -> None:
    """Calls of every outcome and kind, then a rate-limit check with Redis gone."""
    run = {"x-fal-target-url": "https://fal.run/fal-ai/flux/dev"}
    with httpx.Client(base_url=url, timeout=20) as client:
        assert client.post(ROUTE, headers=run, json={"prompt": "x"}).status_code == 200
        assert client.post(ROUTE, json={}).status_code == 400  # refused: no target
        limited = {"x-fal-target-url": f"https://fal.run/{LIMITED}"}
        statuses = [
            client.post(ROUTE, headers=limited, json={"prompt": "x"}).status_code for _ in range(2)
        ]
        assert statuses == [200, 429]
        queue = {"x-fal-target-url": "https://queue.fal.run/fal-ai/flux/dev"}
        assert client.post(ROUTE, headers=queue, json={}).status_code == 502  # upstream error
        slow = {"x-fal-target-url": "https://fal.run/fake/slow-stream?events=50&interval=0.1"}
        with client.stream("POST", ROUTE, headers=slow, json={}) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
        with connect(relay_url(url)) as ws:  # a realtime socket, relayed to its end
            ws.send(pack({"prompt": "x"}))
            assert unpack(ws.recv(timeout=10))["images"]
        stop_redis()
        client.post(
            ROUTE, headers=limited, json={"prompt": "x"}
        )  # admitted or refused: Redis is down


@pytest.fixture(scope="module")
def scraped(fake_url: str) -> Exported:
    dead = free_port()  # nothing listens there
    with running_redis() as redis:
        redis_port = redis.port
        env = proxy_env(
            fake_url,
            FALPROXY_ALLOWED_ENDPOINTS=ENDPOINTS,
            FALPROXY_RATE_LIMIT=f"1/minute {LIMITED.rsplit('/', 1)[0]}/**",
            FALPROXY_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            FALPROXY_UPSTREAM_TIMEOUT="5",
            FALPROXY_BACKUP_DOMAINS="false",  # no fallback to queue.falrun.com (the fake)
        )
        # queue.fal.run answers nothing: every call there is an upstream error.
        env["FALPROXY_UPSTREAMS"] = upstreams_env(fake_url).replace(
            f"queue.fal.run={fake_url}/queue", f"queue.fal.run=http://127.0.0.1:{dead}"
        )
        port = free_port()
        with falproxy_serve(env, port) as served:
            url = f"http://127.0.0.1:{port}"
            every_outcome(url, fake_url, redis.stop)
            deadline = time.monotonic() + 10
            while True:  # an access line and its metrics land as each call ends
                text = httpx.get(f"{url}/metrics", timeout=10).text
                if "client_gone" in text and "falproxy_rate_limit_storage_errors_total{" in text:
                    break
                assert time.monotonic() < deadline, (text[-3000:], served.stderr()[-3000:])
                time.sleep(0.1)
    return exported(text)


def test_the_scrape_shows_every_outcome_and_kind(scraped: Exported) -> None:
    outcomes = scraped.values[("falproxy_requests_total", "outcome")]
    assert outcomes >= {"ok", "refused", "limited", "upstream_error", "client_gone"}
    assert scraped.values[("falproxy_requests_total", "kind")] >= {"http", "websocket"}


def problems(where: str, expr: str, seen: Exported) -> list[str]:
    """Why ``expr`` names something the scrape does not export (empty when it does not)."""
    found: Names = names(expr)
    wrong = [f"{where}: unknown word {word!r}" for word in sorted(found.unknown_words)]
    for metric in sorted(found.metrics - set(seen.labels)):
        wrong.append(f"{where}: no metric {metric}")
    carried = set().union(*(seen.labels.get(m, set()) for m in found.metrics)) | TARGET_LABELS
    for label in sorted(found.grouping - carried):
        wrong.append(f"{where}: no label {label!r} on {sorted(found.metrics)}")
    for metric, matcher in found.matchers:
        metrics = [metric] if metric else sorted(found.metrics)
        if matcher.label in TARGET_LABELS:
            continue
        values = set().union(*(seen.values.get((m, matcher.label), set()) for m in metrics))
        if not values:
            wrong.append(f"{where}: no label {matcher.label!r} on {metrics}")
        elif matcher.op in ("=", "=~") and "$" not in matcher.value:
            wrong += [f"{where}: {m}" for m in unmatched(matcher.op, matcher.value, values)]
    return wrong


def unmatched(op: str, value: str, seen: set[str]) -> list[str]:
    """Literal alternatives (``a|b``) must each be seen; any other regex must match one."""
    if op == "=" or re.fullmatch(r"[\w|-]+", value):
        return [f"value {alt!r} never exported" for alt in value.split("|") if alt not in seen]
    pattern = re.compile(value)
    return [] if any(pattern.fullmatch(v) for v in seen) else [f"{value!r} matches nothing"]


def test_dashboard_and_rules_name_only_what_is_exported(scraped: Exported) -> None:
    wrong = [line for where, e in expressions().items() for line in problems(where, e, scraped)]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = re.fullmatch(
                r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"]
            ).groups()  # type: ignore[union-attr]
            assert metric in scraped.labels and label in scraped.labels[metric] | TARGET_LABELS
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "expr",
    [
        "sum(rate(falproxy_request_total[5m]))",  # misspelt metric
        "sum by (endpoint) (rate(falproxy_requests_total[5m]))",  # no such label
        'rate(falproxy_requests_total{outcome="upstream_errors"}[5m])',  # no such value
        'rate(falproxy_requests_total{outcome=~"ok|gone"}[5m])',  # one alternative wrong
        "sum(rat(falproxy_requests_total[5m]))",  # misspelt function
        "sum by (rule) (rate(falproxy_bytes_total[5m]))",  # a label of another metric
    ],
)
def test_the_check_catches_a_wrong_name(scraped: Exported, expr: str) -> None:
    assert problems("case", expr, scraped)
