"""Routing a request of a server that is all proxy: the proxy route, an operational
endpoint, or 404.

Functions of the proxy layer taking an :class:`~falproxy.relay.exchange.Exchange`, so the
ASGI app and the native ``falproxy serve`` protocol route through the same code and cannot
disagree on a path. Framework integrations that matched the route themselves call
:func:`falproxy.relay.call.serve_route` directly.
"""

from __future__ import annotations

from falproxy.core.answers import Answer
from falproxy.core.errors import NotFound
from falproxy.core.pipeline import route_path
from falproxy.core.types import Scope
from falproxy.proxy.assembled import Proxy
from falproxy.relay.call import serve_route
from falproxy.relay.exchange import Exchange


async def serve_http(proxy: Proxy, exchange: Exchange) -> None:
    """Serve one HTTP request: the proxy route, an operational endpoint, or 404."""
    scope = exchange.scope
    if proxy.serves_path(scope):
        await serve_route(proxy, exchange)
    else:
        await exchange.answer(await answer_elsewhere(proxy, scope))


async def answer_elsewhere(proxy: Proxy, scope: Scope) -> Answer:
    """The answer to a path off the proxy route: an operational endpoint's, or 404."""
    endpoint = proxy.ops.match(route_path(scope))
    if endpoint is None:
        return Answer.of_error(NotFound())
    return await proxy.ops.answer(endpoint, scope["method"], scope["headers"])
