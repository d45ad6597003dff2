"""Prometheus metrics, fed by the same ``ProxyEvent`` as the access log and hooks.

Each proxy owns its own ``CollectorRegistry``, so two proxies in one process (tests,
an app mounting two routes) never share or clash on counters. With several uvicorn
workers each worker reports its own numbers; scrape them per worker, or run one worker
per container as the deployment docs suggest.

The ``app`` label is bounded: the first ``MAX_APP_LABELS`` distinct app ids keep their
names and later ones count as ``other``, so a client spraying made-up app ids (when no
endpoint allow-list is set) cannot grow the scrape without bound.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from falproxy.core.events import ProxyEvent

MAX_APP_LABELS = 200
OTHER_APP = "other"
NO_APP = "-"
# Status polls answer in milliseconds; sync runs and streams take minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
# Resolved label children kept per (kind, app, status, outcome); apps are capped above.
MAX_CACHED_SERIES = 4096
# requests, duration, first byte, bytes up, bytes down: the children one event touches.
_Series = tuple[Counter, Histogram, Histogram, Counter, Counter]


class ProxyMetrics:
    """The proxy's counters, histograms and gauges, and their text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._apps: set[str] = set()
        r = self.registry
        self.requests = Counter(
            "falproxy_requests", "Finished calls", ["kind", "app", "status", "outcome"], registry=r
        )
        self.duration = Histogram(
            "falproxy_request_duration_seconds",
            "Total time of a call",
            ["kind", "app"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_byte = Histogram(
            "falproxy_upstream_first_byte_seconds",
            "Time until fal's response headers arrived",
            ["kind", "app"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes = Counter(
            "falproxy_bytes", "Body bytes relayed", ["kind", "direction"], registry=r
        )
        self.open = Gauge(
            "falproxy_open_calls",
            "Calls being relayed now (streams, sockets)",
            ["kind"],
            registry=r,
        )
        self.open_http = self.open.labels("http")  # hoisted: touched twice per call
        self._series: dict[tuple[str, str, int, str], _Series] = {}
        self.open_websocket = self.open.labels("websocket")
        self.limited = Counter(
            "falproxy_rate_limited", "Calls refused by a rate limit", ["rule"], registry=r
        )
        self.limiter_errors = Counter(
            "falproxy_rate_limit_storage_errors",
            "Rate-limit storage failures (e.g. Redis down), by what the proxy did",
            ["action"],
            registry=r,
        )

    def app_label(self, app_id: str | None) -> str:
        if app_id is None:
            return NO_APP
        if app_id in self._apps:
            return app_id
        if len(self._apps) < MAX_APP_LABELS:
            self._apps.add(app_id)
            return app_id
        return OTHER_APP

    def observe(self, event: ProxyEvent) -> None:
        """Record one finished call."""
        app = self.app_label(event.app_id)
        series = self._series.get((event.kind, app, event.status, event.outcome))
        if series is None:  # labels() costs a lock and a lookup: resolve once per series
            series = self._resolve(event.kind, app, event.status, event.outcome)
        requests, duration, first_byte, bytes_up, bytes_down = series
        requests.inc()
        duration.observe(event.duration_seconds)
        if event.first_byte_seconds is not None:
            first_byte.observe(event.first_byte_seconds)
        bytes_up.inc(event.bytes_up)
        bytes_down.inc(event.bytes_down)

    def _resolve(self, kind: str, app: str, status: int, outcome: str) -> _Series:
        series = (
            self.requests.labels(kind, app, str(status), outcome),
            self.duration.labels(kind, app),
            self.first_byte.labels(kind, app),
            self.bytes.labels(kind, "up"),
            self.bytes.labels(kind, "down"),
        )
        if len(self._series) < MAX_CACHED_SERIES:
            self._series[(kind, app, status, outcome)] = series
        return series

    def storage_error(self, admitted: bool) -> None:
        self.limiter_errors.labels("admitted" if admitted else "refused").inc()

    def rate_limited(self, rule: str) -> None:
        self.limited.labels(rule).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
