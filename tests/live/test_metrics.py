"""``GET /metrics``, parsed with prometheus-client's own parser, against the traffic sent."""

from __future__ import annotations

import time

from falproxy import RateLimit
from falproxy.core.events import ProxyEvent
from falproxy.core.targets import MAX_TARGET_LENGTH
from falproxy.ops.metrics import (
    MAX_APP_LABEL_LENGTH,
    MAX_APP_LABELS,
    MAX_SCRAPE_BYTES,
    ProxyMetrics,
)
from tests.support.hook_support import ROUTE, SCHNELL, bearer, live_proxy, run
from tests.support.metrics import parse, scrape, value


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
    # Refused by a limit: not admitted, so counted under "-" (issue 12).
    assert value(samples, req, kind="http", app="-", status="429", outcome="limited") == 1
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


def long_app(n: int) -> str:
    """A target whose app id fills the whole 8 KB the target parser accepts."""
    prefix = f"https://fal.run/owner-{n:04d}/"
    return prefix + "x" * (MAX_TARGET_LENGTH - len(prefix))


def test_refused_calls_never_name_apps_and_the_scrape_stays_small(fake_url: str) -> None:
    """Issue 12: 300 refused calls with 8 KB app ids once made /metrics 62 MB."""
    limits = (RateLimit("1/minute"),)
    with live_proxy(fake_url, auth_tokens=("t0k3n",), rate_limits=limits) as client:
        refused = [run(client, long_app(n)).status_code for n in range(300)]  # no token: 401
        assert run(client, long_app(0), **bearer("t0k3n")).status_code == 200
        limited = [run(client, long_app(n), **bearer("t0k3n")).status_code for n in range(50)]
        response = client.get("/metrics")
    assert set(refused) == {401} and set(limited) == {429}
    assert len(response.content) < 64 * 1024, len(response.content)
    samples = parse(response.text)
    names = {dict(labels).get("app") for _, labels in samples} - {None}
    admitted = long_app(0).removeprefix("https://fal.run/")[:MAX_APP_LABEL_LENGTH]
    assert names == {"-", admitted}, "only the admitted call named its app"
    req = "falproxy_requests_total"
    assert value(samples, req, kind="http", app="-", status="401", outcome="refused") == 300
    assert value(samples, req, kind="http", app="-", status="429", outcome="limited") == 50


def test_worst_case_scrape_is_under_a_megabyte() -> None:
    """Every app slot taken by a longest name, both kinds, and a spray of statuses."""
    metrics = ProxyMetrics()
    apps = [f"owner-{n:04d}/" + "x" * 8000 for n in range(MAX_APP_LABELS + 20)]
    outcomes = ("ok", "upstream_error", "client_gone", "refused", "limited")
    for app in apps:
        for kind in ("http", "websocket"):
            metrics.observe(ProxyEvent(kind, "POST", app, 200, "ok", admitted=True))
    for app in apps:
        for kind in ("http", "websocket"):
            for status in range(100, 600, 7):
                for outcome in outcomes:
                    event = ProxyEvent(
                        kind, "POST", app, status, outcome, first_byte_seconds=0.1, admitted=True
                    )
                    metrics.observe(event)
    assert len(metrics.exposition()) < MAX_SCRAPE_BYTES
