"""An ASGI ``websocket`` scope, served by the relay layer's one socket session.

The session itself (admission, upstream, accept, relay, event) is
:func:`falproxy.relay.socket.session.serve_socket`; this only waits for the ASGI
``websocket.connect`` message and wraps ``receive``/``send`` in an
:class:`~falproxy.asgi.websocket.exchange.AsgiSocketExchange`.
"""

from __future__ import annotations

from falproxy.asgi.websocket.exchange import AsgiSocketExchange
from falproxy.core.types import Receive, Scope, Send
from falproxy.relay.socket.session import SocketHost, serve_socket

__all__ = ["serve_websocket"]


async def serve_websocket(
    proxy: SocketHost, scope: Scope, receive: Receive, send: Send, *, routed: bool
) -> None:
    """Relay one WebSocket to fal, or refuse it with an HTTP status before the upgrade.

    ``routed`` says whether the socket arrived on the proxy route; anything else is a 404.
    """
    if (await receive())["type"] != "websocket.connect":
        return  # the client left before the handshake reached us
    await serve_socket(proxy, AsgiSocketExchange(scope, receive, send), routed=routed)
