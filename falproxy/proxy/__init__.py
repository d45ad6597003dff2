"""The proxy layer: the assembled proxy and its routing, owned by no front end.

Every front end (the ASGI app, the WSGI adapter, the native ``falproxy serve`` protocol)
sits on top of this package and none imports another (``lint-imports`` checks it).
"""

from falproxy.proxy.assembled import Proxy
from falproxy.proxy.routing import answer_elsewhere, serve_http

__all__ = ["Proxy", "answer_elsewhere", "serve_http"]
