"""``GET /metrics``, parsed with prometheus-client's own parser, against the traffic sent."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from falproxy import RateLimit
from falproxy.ops.metrics import MAX_APP_LABELS, ProxyMetrics
from tests.support.hook_support import ROUTE, SCHNELL, live_proxy, run


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_match_traffic(fake_url: str) -> None:
    limits = (RateLimit("2/minute", "fal-ai/flux/schnell"),)
    with live_proxy(fake_url, rate_limits=limits, allow_anonymous=True) as client:
        ok = [run(client) for _ in range(3)]
        assert [r.status_code for r in ok] == [200] * 3
        assert [run(client, SCHNELL).status_code for _ in range(3)] == [200, 200, 429]
        assert client.post(ROUTE, headers={"content-type": "application/json"}).status_code == 400
        samples = scrape(client)
    req = "falproxy_requests_total"
    assert value(samples, req, kind="http", app="fal-ai/flux/dev", status="200", outcome="ok") == 3
    assert (
        value(samples, req, kind="http", app="fal-ai/flux/schnell", status="200", outcome="ok") == 2
    )
    assert (
        value(samples, req, kind="http", app="fal-ai/flux/schnell", status="429", outcome="limited")
        == 1
    )
    assert value(samples, req, kind="http", app="-", status="400", outcome="refused") == 1
    assert value(samples, "falproxy_rate_limited_total", rule="0") == 1
    count = "falproxy_request_duration_seconds_count"
    assert value(samples, count, kind="http", app="fal-ai/flux/dev") == 3
    first_byte = "falproxy_upstream_first_byte_seconds_count"
    assert value(samples, first_byte, kind="http", app="fal-ai/flux/dev") == 3
    down = sum(len(r.content) for r in ok)
    assert value(samples, "falproxy_bytes_total", kind="http", direction="down") >= down
    assert value(samples, "falproxy_bytes_total", kind="http", direction="up") == 5 * len(
        b'{"prompt":"a fox"}'
    )
    assert value(samples, "falproxy_open_calls", kind="http") == 0


def test_metrics_can_be_turned_off(fake_url: str) -> None:
    with live_proxy(fake_url, metrics=False) as client:
        assert client.get("/metrics").status_code == 404


def test_app_label_is_bounded() -> None:
    metrics = ProxyMetrics()
    labels = {metrics.app_label(f"owner/app-{n}") for n in range(MAX_APP_LABELS + 50)}
    assert len(labels) == MAX_APP_LABELS + 1 and "other" in labels
    assert metrics.app_label("owner/app-0") == "owner/app-0"
    assert metrics.app_label(None) == "-"


def test_open_calls_gauge_counts_a_live_stream(fake_url: str) -> None:
    slow = "https://fal.run/fake/slow-stream?events=50&interval=0.2"
    headers = {"x-fal-target-url": slow, "content-type": "application/json"}
    with live_proxy(fake_url, allow_anonymous=True) as client:
        with client.stream("POST", ROUTE, headers=headers, json={}) as response:
            lines = response.iter_lines()  # held open: dropping it would close the stream
            while not next(lines).startswith("data:"):
                pass
            assert value(scrape(client), "falproxy_open_calls", kind="http") == 1
            lines.close()
        deadline = time.monotonic() + 5
        while value(scrape(client), "falproxy_open_calls", kind="http") != 0:
            assert time.monotonic() < deadline, "the gauge never went back to 0"
            time.sleep(0.05)
        outcomes = scrape(client)
    gone = {"kind": "http", "app": "fake/slow-stream", "status": "200", "outcome": "client_gone"}
    assert value(outcomes, "falproxy_requests_total", **gone) == 1
