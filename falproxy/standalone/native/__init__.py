"""The native front end of ``falproxy serve``: HTTP/1.1 parsed with httptools, no ASGI.

uvicorn stays the process host (workers, signals, lifespan, graceful shutdown); it runs
:class:`NativeHttpProtocol` as its HTTP protocol. Each request is parsed by llhttp
directly, routed by :func:`falproxy.proxy.serve_http` (the ASGI app's routing too)
and served by the same call path as the ASGI app (:mod:`falproxy.relay.call`) through a
:class:`~falproxy.standalone.native.exchange.NativeExchange`. WebSocket upgrades are
served here too (:mod:`falproxy.standalone.native.websocket`), through the relay layer's
socket session, and in fake mode so are the fake fal's own pages and sockets
(:mod:`~falproxy.standalone.native.asgi_http`, :mod:`~falproxy.standalone.native.ws_asgi`):
no request is ever handed to another parser.
"""

from falproxy.standalone.native.protocol import NativeHttpProtocol

__all__ = ["NativeHttpProtocol"]
