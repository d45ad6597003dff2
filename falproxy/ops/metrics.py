"""Prometheus metrics, fed by the same ``ProxyEvent`` as the access log and hooks.

Each proxy owns its own ``CollectorRegistry``, so two proxies in one process (tests,
an app mounting two routes) never share or clash on counters. Under ``falproxy serve
--workers N`` the serving parent sets ``PROMETHEUS_MULTIPROC_DIR`` (see
:mod:`falproxy.ops.workers`): every worker writes its numbers there and any worker's
``/metrics`` reports the sum over all of them, so scrapes no longer alternate.

The ``app`` label is bounded in number, in length and in who can create it, because the
scrape is rendered on the event loop and an attacker who grows it slows every call:
- only admitted calls name their app; calls refused before or during admission (401,
  403, 412, 429, malformed requests) count under ``-``, whatever app id they carried;
- a name is the app id as the policy saw it, cut to ``MAX_APP_LABEL_LENGTH`` characters;
- the first ``MAX_APP_LABELS`` distinct names are kept, later ones count as ``other``,
  and past ``MAX_REQUEST_SERIES`` request series a status counts by its class (``5xx``).
Together these keep the whole scrape under ``MAX_SCRAPE_BYTES`` (tests/live/test_metrics.py
fills every slot with the longest names and measures it).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from falproxy.core.events import ProxyEvent

# Each named app costs two histograms (36 lines) per kind; 48 of them at full length
# stay well under MAX_SCRAPE_BYTES with both kinds used.
MAX_APP_LABELS = 48
# fal app ids are owner/name[/path]: far shorter. Longer ids are cut, not refused: the
# policy already decided on the call, the label only has to stay small.
MAX_APP_LABEL_LENGTH = 100
# What the bounds above guarantee for the whole /metrics answer, checked by a test.
MAX_SCRAPE_BYTES = 1024 * 1024
OTHER_APP = "other"
NO_APP = "-"  # no app named, or the call was not admitted
# Set by the serving parent for several workers (prometheus_client's multiprocess mode).
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Status polls answer in milliseconds; sync runs and streams take minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
# Distinct (kind, app, status, outcome) request series; past it a call counts under
# app "other" and its status class ("5xx"), so odd upstream statuses cannot grow the scrape.
MAX_REQUEST_SERIES = 384
# requests, duration, first byte, bytes up, bytes down: the children one event touches.
_Series = tuple[Counter, Histogram, Histogram, Counter, Counter]


class ProxyMetrics:
    """The proxy's counters, histograms and gauges, and their text exposition."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Fixed at creation like prometheus_client's own value class (chosen at import).
        self._multiprocess_dir = multiprocess_dir or os.environ.get(MULTIPROC_DIR_ENV) or None
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
            multiprocess_mode="livesum",  # the service's open calls: live workers' sum
        )
        self.open_http = self.open.labels("http")  # hoisted: touched twice per call
        self._series: dict[tuple[str, str, str, str], _Series] = {}
        self.open_websocket = self.open.labels("websocket")
        self.limited = Counter(
            "falproxy_rate_limited", "Calls refused by a rate limit", ["rule"], registry=r
        )
        self.backup_calls = Counter(
            "falproxy_upstream_backup_calls",
            "Calls sent to fal's backup domain because fal.run could not be reached",
            ["kind"],
            registry=r,
        )
        self.limiter_errors = Counter(
            "falproxy_rate_limit_storage_errors",
            "Rate-limit storage failures (e.g. Redis down), by what the proxy did",
            ["action"],
            registry=r,
        )
        # Money (issue 20): only admitted calls carry units or a cost, so the app label is
        # the same bounded one as above.
        self.billable_units = Counter(
            "falproxy_billable_units",
            "Units fal billed (x-fal-billable-units), by app",
            ["app"],
            registry=r,
        )
        self.spend = Counter(
            "falproxy_spend_usd", "USD charged against spend budgets, by app", ["app"], registry=r
        )
        self.store_errors = Counter(
            "falproxy_request_store_errors",
            "Ownership and budget storage failures (e.g. Redis down); calls are refused",
            registry=r,
        )

    def app_label(self, app_id: str | None) -> str:
        """The bounded ``app`` label of an admitted call's app id (see the module doc)."""
        if not app_id:
            return NO_APP
        app_id = app_id[:MAX_APP_LABEL_LENGTH]
        if app_id in self._apps:
            return app_id
        if len(self._apps) < MAX_APP_LABELS:
            self._apps.add(app_id)
            return app_id
        return OTHER_APP

    def observe(self, event: ProxyEvent) -> None:
        """Record one finished call."""
        app = self.app_label(event.app_id) if event.admitted else NO_APP
        key = (event.kind, app, str(event.status), event.outcome)
        series = self._series.get(key)
        if series is None:  # labels() costs a lock and a lookup: resolve once per series
            series = self._resolve(*key)
        requests, duration, first_byte, bytes_up, bytes_down = series
        requests.inc()
        duration.observe(event.duration_seconds)
        if event.first_byte_seconds is not None:
            first_byte.observe(event.first_byte_seconds)
        bytes_up.inc(event.bytes_up)
        bytes_down.inc(event.bytes_down)
        if event.backup_domain:
            self.backup_calls.labels(event.kind).inc()
        if event.billable_units is not None or event.cost_usd is not None:
            self._money(app, event)

    def _money(self, app: str, event: ProxyEvent) -> None:
        if event.billable_units is not None:
            self.billable_units.labels(app).inc(event.billable_units)
        if event.cost_usd is not None:
            self.spend.labels(app).inc(event.cost_usd)

    def _resolve(self, kind: str, app: str, status: str, outcome: str) -> _Series:
        key = (kind, app, status, outcome)
        if len(self._series) >= MAX_REQUEST_SERIES:
            # Full: fold into a bounded overflow series (kinds x 6 classes x outcomes).
            app, status = OTHER_APP, f"{status[0]}xx" if len(status) == 3 else status
            overflow = self._series.get((kind, app, status, outcome))
            if overflow is not None:
                return overflow
        series = (
            self.requests.labels(kind, app, status, outcome),
            self.duration.labels(kind, app),
            self.first_byte.labels(kind, app),
            self.bytes.labels(kind, "up"),
            self.bytes.labels(kind, "down"),
        )
        if len(self._series) < MAX_REQUEST_SERIES:
            self._series[key] = series
        else:
            self._series.setdefault((kind, app, status, outcome), series)
        return series

    def storage_error(self, admitted: bool) -> None:
        self.limiter_errors.labels("admitted" if admitted else "refused").inc()

    def store_error(self) -> None:
        self.store_errors.inc()

    def rate_limited(self, rule: str) -> None:
        self.limited.labels(rule).inc()

    def exposition(self) -> bytes:
        """The text exposition: this proxy's registry, or every worker's files summed."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
