"""``FalProxy``: the ASGI front end. It does only ASGI I/O; every decision is the core's.

route -> (ops endpoint | the proxy route | 404). The proxy route is served by
:func:`falproxy.relay.call.serve_route` through an :class:`AsgiExchange` (the same code
the native ``falproxy serve`` protocol runs): CORS preflight or call, admission by the
shared :class:`~falproxy.admission.pipeline.Pipeline`, the body streamed up and the
answer streamed down. Every answer the proxy writes itself goes through
:func:`send_answer`; every call ends in one event via the :class:`~falproxy.ops.calls.CallLog`.
"""

from __future__ import annotations

import logging

from falproxy.admission.base import ProxyBase
from falproxy.asgi.exchange import AsgiExchange
from falproxy.asgi.responses import send_answer
from falproxy.asgi.websocket.session import serve_websocket
from falproxy.config.checks import authentication_warnings
from falproxy.config.settings import ProxyConfig
from falproxy.core.answers import Answer
from falproxy.core.errors import NotFound
from falproxy.core.keys import FAKE_CREDENTIAL_VALUE, FalCredential
from falproxy.core.pipeline import route_path
from falproxy.core.types import Receive, Scope, Send
from falproxy.relay.call import serve_route
from falproxy.relay.exchange import Exchange
from falproxy.relay.pricing_client import pricing_fetch
from falproxy.relay.upstream import UpstreamClient

logger = logging.getLogger("falproxy")
FAKE_CREDENTIAL = FalCredential(FAKE_CREDENTIAL_VALUE)


class FalProxy(ProxyBase):
    """An ASGI app that validates fal targets and relays calls with the server's key.

    Serve it directly (``falproxy serve``), or mount it in another ASGI app (see
    :mod:`falproxy.integrations.fastapi`). Besides the proxy route it answers the
    operational endpoints (``/healthz``, ``/readyz``, ``/metrics`` by default). The
    upstream client opens on first use and closes on lifespan shutdown or :meth:`aclose`.
    """

    def __init__(self, config: ProxyConfig | None = None) -> None:
        super().__init__(config)
        self.upstream = UpstreamClient(self.config)
        if self.pipeline.requests.budgets is not None:  # fal's pricing API, via our client
            self.pipeline.requests.budgets.prices.use(pricing_fetch(self.upstream.client))
        self._routes = {self.config.route, self.config.route.rstrip("/") + "/"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await serve_websocket(self, scope, receive, send, routed=self.serves_path(scope))
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

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

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for warning in self.startup_warnings():
                    logger.warning(warning)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

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

    async def serve_ops(self, scope: Scope, send: Send) -> bool:
        """Answer ``scope`` if it asks for an operational endpoint; False if it does not."""
        endpoint = self.ops.match(route_path(scope))
        if endpoint is None:
            return False
        await send_answer(send, await self.ops.answer(endpoint, scope["method"], scope["headers"]))
        return True

    async def serve_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one proxied call whatever the path: for routes a framework matched."""
        await serve_route(self, AsgiExchange(scope, receive, send, self.config.stream_idle_timeout))

    async def serve_http(self, exchange: Exchange) -> None:
        """Route one HTTP request of a server that is all proxy: the proxy route, an
        operational endpoint, or 404. The ASGI app and the native ``falproxy serve``
        protocol both route through here, so they cannot disagree on a path."""
        scope = exchange.scope
        if self.serves_path(scope):
            await serve_route(self, exchange)
        else:
            await exchange.answer(await self.answer_elsewhere(scope))

    async def answer_elsewhere(self, scope: Scope) -> Answer:
        """The answer to a path off the proxy route: an operational endpoint's, or 404."""
        endpoint = self.ops.match(route_path(scope))
        if endpoint is None:
            return Answer.of_error(NotFound())
        return await self.ops.answer(endpoint, scope["method"], scope["headers"])

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve_http(AsgiExchange(scope, receive, send, self.config.stream_idle_timeout))
