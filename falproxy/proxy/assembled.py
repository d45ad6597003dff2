"""``Proxy``: the assembled proxy, built once from the settings, whatever serves it.

The ASGI app, the WSGI adapter and the native ``falproxy serve`` protocol differ only in
their I/O; the settings, the admission pipeline, the call log, the metrics, readiness,
the operational endpoints and the one upstream client are the same objects built the
same way, here — the way httpx's ``BaseClient`` holds what its sync and async clients
share. It lives below every front end so none of them has to import another to find it.
"""

from __future__ import annotations

from falproxy.admission.pipeline import Pipeline
from falproxy.config.checks import authentication_warnings
from falproxy.config.fake_mode import announce_fake_mode, with_fake_mode
from falproxy.config.settings import ProxyConfig
from falproxy.core.keys import FAKE_CREDENTIAL_VALUE, FalCredential
from falproxy.core.pipeline import route_path
from falproxy.core.policy import Policy
from falproxy.core.types import Scope
from falproxy.ops.calls import CallLog
from falproxy.ops.endpoints import OpsEndpoints
from falproxy.ops.metrics import ProxyMetrics
from falproxy.ops.readiness import Readiness, ReadinessCheck
from falproxy.ops.tracing import tracing_from_env
from falproxy.relay.pricing_client import pricing_fetch
from falproxy.relay.upstream import UpstreamClient

FAKE_CREDENTIAL = FalCredential(FAKE_CREDENTIAL_VALUE)


class Proxy:
    """Rules, gate, operations and upstream of one proxy; front ends add only their I/O.

    The upstream client opens its pool on first use, in the event loop that first calls
    it, and closes in :meth:`aclose`.
    """

    def __init__(self, config: ProxyConfig | None = None) -> None:
        # FALPROXY_FAKE_URL: every fal host to that fake, with its key (config/fake_mode.py).
        # Built from the environment, a mistake is one line and exit 4, as in ProxyConfig.load().
        self.config = with_fake_mode(config if config is not None else ProxyConfig.load())
        self.config.require_credential()
        announce_fake_mode(self.config.fake_url)
        self.metrics = ProxyMetrics()
        self.readiness = Readiness()
        self.pipeline = Pipeline(self.config, self.metrics)
        # Tracing is off unless OTEL_* variables or the application set it up.
        self.calls = CallLog(self.config, self.metrics, tracing_from_env())
        self.ops = OpsEndpoints(self.config, self.metrics, self.readiness)
        self.upstream = UpstreamClient(self.config)
        requests = self.pipeline.requests
        if requests.budgets is not None:  # fal's pricing API, through the same client
            requests.budgets.prices.use(pricing_fetch(self.upstream.client))
        if requests.store is not None and self.config.redis_url:
            # Ownership and budgets fail closed without Redis: not ready while it is down.
            self.readiness.add_dependency("redis", requests.ready, required=True)
        self._routes = {self.config.route, self.config.route.rstrip("/") + "/"}

    @property
    def policy(self) -> Policy:
        """The compiled allow-lists (for hooks and tests that inspect them)."""
        return self.pipeline.policy

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """``/readyz`` answers 503 while ``check`` returns false (e.g. Redis unreachable)."""
        self.readiness.add_check(name, check)

    async def aclose(self) -> None:
        """Close pooled upstream (and rate-limit storage) connections."""
        await self.upstream.aclose()
        await self.pipeline.aclose()

    def startup_warnings(self) -> list[str]:
        """What an operator must hear once at start-up."""
        if self.config.credential == FAKE_CREDENTIAL:
            return []  # the fake spends nothing: an open allow-list and mapped hosts are normal
        warnings = []
        if self.pipeline.policy.allows_all_endpoints:
            warnings.append(
                "no endpoint allow-list: every fal app can be called through this proxy "
                "(set FALPROXY_ALLOWED_ENDPOINTS, e.g. 'fal-ai/flux/**')"
            )
        warnings.extend(f"upstream mapped: {line}" for line in self.pipeline.upstreams.describe())
        warnings.extend(authentication_warnings(self.config))
        return warnings

    def serves_path(self, scope: Scope) -> bool:
        """Whether ``scope`` asks for the proxy route.

        Inside a mount (``app.mount("/api/fal/proxy", proxy)``) the path relative to the
        mount is "/" and the route is the mount point itself, which counts as the route.
        """
        path = route_path(scope)
        if path in self._routes:
            return True
        root: str = scope.get("root_path", "")
        route = self.config.route.rstrip("/")
        return path == "/" and route != "" and root.rstrip("/").endswith(route)
