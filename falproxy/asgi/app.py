"""``FalProxy``: the ASGI front end. It does only ASGI I/O; every decision is below it.

The proxy itself (settings, admission, operations, upstream client) is the front-end
neutral :class:`~falproxy.proxy.Proxy`; routing (the proxy route, an operational endpoint,
or 404) is :func:`falproxy.proxy.serve_http`, the code the native ``falproxy serve``
protocol runs too. This class adds the ASGI entry point, lifespan and WebSockets: each
HTTP request becomes an :class:`AsgiExchange`, every answer the proxy writes itself goes
through :func:`send_answer`, and every call ends in one event via the
:class:`~falproxy.ops.calls.CallLog`.
"""

from __future__ import annotations

import logging

from falproxy.asgi.exchange import AsgiExchange
from falproxy.asgi.responses import send_answer
from falproxy.asgi.websocket.session import serve_websocket
from falproxy.core.pipeline import route_path
from falproxy.core.types import Receive, Scope, Send
from falproxy.proxy import Proxy, serve_http
from falproxy.relay.call import serve_route
from falproxy.relay.exchange import serve_call

logger = logging.getLogger("falproxy")


class FalProxy(Proxy):
    """An ASGI app that validates fal targets and relays calls with the server's key.

    Serve it directly (``falproxy serve``), or mount it in another ASGI app (see
    :mod:`falproxy.integrations.fastapi`). Besides the proxy route it answers the
    operational endpoints (``/healthz``, ``/readyz``, ``/metrics`` by default). The
    upstream client opens on first use and closes on lifespan shutdown or :meth:`aclose`.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            exchange = self._exchange(scope, receive, send)
            await serve_call(serve_http(self, exchange), exchange)
        elif scope["type"] == "websocket":
            await serve_websocket(self, scope, receive, send, routed=self.serves_path(scope))
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

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

    async def serve_ops(self, scope: Scope, send: Send) -> bool:
        """Answer ``scope`` if it asks for an operational endpoint; False if it does not."""
        endpoint = self.ops.match(route_path(scope))
        if endpoint is None:
            return False
        await send_answer(send, await self.ops.answer(endpoint, scope["method"], scope["headers"]))
        return True

    async def serve_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one proxied call whatever the path: for routes a framework matched."""
        exchange = self._exchange(scope, receive, send)
        await serve_call(serve_route(self, exchange), exchange)

    def _exchange(self, scope: Scope, receive: Receive, send: Send) -> AsgiExchange:
        return AsgiExchange(scope, receive, send, self.config.stream_idle_timeout)
