"""The native front end of ``falproxy serve``: HTTP/1.1 parsed with httptools, no ASGI.

uvicorn stays the process host (workers, signals, lifespan, graceful shutdown); it runs
:class:`NativeHttpProtocol` as its HTTP protocol. Each request is parsed by llhttp
directly, routed by :func:`falproxy.proxy.serve_http` (the ASGI app's routing too)
and served by the same call path as the ASGI app (:mod:`falproxy.relay.call`) through a
:class:`~falproxy.standalone.native.exchange.NativeExchange`. WebSocket upgrades are
served here too (:mod:`falproxy.standalone.native.websocket`), through the relay layer's
socket session; only the fake fal's HTTP pages in fake mode are handed over, bytes intact,
to the guarded uvicorn protocol at a request boundary.
"""

from falproxy.standalone.native.protocol import NativeHttpProtocol

__all__ = ["NativeHttpProtocol"]
