"""The proxy a native connection serves, found in the app uvicorn loaded.

uvicorn wraps the app it loads (trace logging, proxy headers); ``falproxy serve`` loads a
:class:`~falproxy.asgi.app.FalProxy`, or in fake mode a
:class:`~falproxy.standalone.server.FakeBesideProxy`. Anything else (an app of the user's,
a middleware) cannot be bypassed silently, so it is refused with a clear error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.middleware.message_logger import MessageLoggerMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from falproxy.asgi.app import FalProxy
from falproxy.core.errors import ConfigError
from falproxy.core.types import ASGIApp, Scope
from falproxy.standalone.server import FakeBesideProxy

logger = logging.getLogger("falproxy")

NOT_A_PROXY = (
    "the native HTTP protocol serves a FalProxy (or falproxy serve --fake) only, got {!r}: "
    "run other apps with uvicorn's own protocols, or falproxy serve --server asgi"
)
# falproxy trusts X-Forwarded-For only per FALPROXY_TRUSTED_PROXIES (core/client_address.py).
PROXY_HEADERS_IGNORED = (
    "uvicorn's proxy headers are ignored by the native protocol: falproxy trusts "
    "X-Forwarded-For only from FALPROXY_TRUSTED_PROXIES"
)


@dataclass(frozen=True, slots=True)
class Served:
    proxy: FalProxy
    hands_over: Callable[[Scope], bool] | None  # requests for the ASGI app beside the proxy
    beside: ASGIApp | None = None  # that app (it routes them itself)


def served_app(app: Any) -> Served:
    """The proxy inside ``app`` (uvicorn's ``config.loaded_app``), or ConfigError."""
    while True:
        if isinstance(app, FalProxy):
            return Served(app, None)
        if isinstance(app, FakeBesideProxy):
            return Served(app.proxy, app.serves_fake, app)
        if isinstance(app, ProxyHeadersMiddleware):
            logger.warning(PROXY_HEADERS_IGNORED)
        elif not isinstance(app, MessageLoggerMiddleware):
            raise ConfigError(NOT_A_PROXY.format(type(app).__name__))
        app = app.app
