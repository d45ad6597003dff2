"""The proxy a native connection serves, found in the app uvicorn loaded.

uvicorn wraps the app it loads (trace logging, proxy headers); ``falproxy serve`` loads a
proxy (a :class:`~falproxy.proxy.Proxy`, which the ASGI ``FalProxy`` is), or in fake mode
an app holding one beside the fake fal (:class:`~falproxy.standalone.server.FakeBesideProxy`).
Both are recognised through the proxy layer's class, never by importing another front end.
Anything else (an app of the user's, a middleware) cannot be bypassed silently, so it is
refused with a clear error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from uvicorn.middleware.message_logger import MessageLoggerMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from falproxy.core.errors import ConfigError
from falproxy.core.types import ASGIApp, Receive, Scope, Send
from falproxy.proxy import Proxy

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


@runtime_checkable
class _ProxyBeside(Protocol):
    """An app serving a proxy beside another app (``FakeBesideProxy``, fake mode)."""

    proxy: object  # checked to be a Proxy by served_app

    def serves_fake(self, scope: Scope) -> bool: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


@dataclass(frozen=True, slots=True)
class Served:
    proxy: Proxy
    hands_over: Callable[[Scope], bool] | None  # requests for the ASGI app beside the proxy
    beside: ASGIApp | None = None  # that app (it routes them itself)


def served_app(app: Any) -> Served:
    """The proxy inside ``app`` (uvicorn's ``config.loaded_app``), or ConfigError."""
    while True:
        if isinstance(app, Proxy):
            return Served(app, None)
        if isinstance(app, _ProxyBeside) and isinstance(app.proxy, Proxy):
            return Served(app.proxy, app.serves_fake, app)
        if isinstance(app, ProxyHeadersMiddleware):
            logger.warning(PROXY_HEADERS_IGNORED)
        elif not isinstance(app, MessageLoggerMiddleware):
            raise ConfigError(NOT_A_PROXY.format(type(app).__name__))
        app = app.app
