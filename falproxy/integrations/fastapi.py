"""FastAPI and Starlette: mount the ASGI proxy, with its client opened and closed properly.

A mounted app's lifespan never runs (Starlette sends lifespan only to the top-level app),
so the proxy's pooled upstream client would open lazily on first use and never close.
:func:`mount` adds the proxy's routes and its operational endpoints (``/healthz``,
``/readyz``, ``/metrics``) and wraps the parent's lifespan; :func:`proxy_lifespan` does
the latter alone for ``FastAPI(lifespan=...)``. Plain ``app.mount(route, proxy)`` also
works, but Starlette answers the bare route (no trailing slash) with a 307 redirect to
``route/``, one extra round trip per call: :func:`mount` registers the exact route instead.

:func:`fal_proxy_router` serves the proxy from an ``APIRouter`` route, so the app's own
dependencies (auth, rate limits) run first and can refuse the call before it reaches fal;
:func:`fal_ops_router` serves the operational endpoints next to it, outside those
dependencies (a load balancer's probe carries no user credentials).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from falproxy.config.extras import framework_import_error

try:
    from fastapi import APIRouter, Request, params
except ModuleNotFoundError:  # one line naming the extra, not a bare ImportError
    raise framework_import_error("fastapi", "FastAPI", "fastapi") from None
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from falproxy.asgi.app import FalProxy
from falproxy.core.types import Receive, Scope, Send

logger = logging.getLogger("falproxy")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
# Every method reaches the pipeline, which answers a JSON 405 for the ones not proxied.
ROUTED_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def proxy_lifespan(proxy: FalProxy, inner: Lifespan | None = None) -> Lifespan:
    """A lifespan that announces the proxy's warnings, runs ``inner``, then closes the proxy."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        for warning in proxy.startup_warnings():
            logger.warning(warning)
        try:
            if inner is None:
                yield None
            else:
                async with inner(app) as state:
                    yield state
        finally:
            await proxy.aclose()

    return lifespan


def mount(app: Starlette, proxy: FalProxy | None = None) -> FalProxy:
    """Serve ``proxy`` at its configured route (exact, and with a trailing slash) in ``app``.

    The operational endpoints are mounted too (paths from ``health_path``, ``ready_path``
    and ``metrics_path``). The routes go first, so a catch-all mount (an SPA at "/")
    cannot shadow them; the app's lifespan is wrapped so the upstream client closes at
    shutdown. Returns the proxy.
    """
    proxy = proxy if proxy is not None else FalProxy()
    route = proxy.config.route
    paths = dict.fromkeys([route, route.rstrip("/") + "/"])
    routes: list[BaseRoute] = [Route(path, proxy, methods=None) for path in paths]
    routes += [WebSocketRoute(path, proxy) for path in paths]
    routes += [Route(path, proxy, methods=["GET", "HEAD"]) for path in proxy.ops.paths]
    app.router.routes[0:0] = routes
    app.router.lifespan_context = proxy_lifespan(proxy, app.router.lifespan_context)
    return proxy


class _ProxiedCall(Response):
    """Hands the raw ASGI call to the proxy, so bodies stream both ways untouched."""

    def __init__(self, proxy: FalProxy) -> None:
        super().__init__()
        self._proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy.serve_call(scope, receive, send)


def fal_proxy_router(
    proxy: FalProxy | None = None, *, dependencies: Sequence[params.Depends] = ()
) -> APIRouter:
    """An ``APIRouter`` serving the proxy route after ``dependencies`` have run.

    A dependency refuses a call by raising ``HTTPException`` (FastAPI answers
    ``{"detail": ...}``). Dependencies must not read the request body: the proxy
    streams it to fal. Use :func:`proxy_lifespan` to close the proxy at shutdown.
    """
    proxy = proxy if proxy is not None else FalProxy()
    router = APIRouter(dependencies=list(dependencies))

    async def fal_proxy(request: Request) -> Response:
        return _ProxiedCall(proxy)

    router.add_api_route(
        proxy.config.route, fal_proxy, methods=ROUTED_METHODS, include_in_schema=False
    )
    return router


class _OpsCall(Response):
    """Hands an operational endpoint's request to the proxy, which answers it."""

    def __init__(self, proxy: FalProxy) -> None:
        super().__init__()
        self._proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy.serve_ops(scope, send)


def fal_ops_router(proxy: FalProxy) -> APIRouter:
    """An ``APIRouter`` with the proxy's ``/healthz``, ``/readyz`` and ``/metrics``.

    Include it next to :func:`fal_proxy_router` (without that router's dependencies):
    ``app.include_router(fal_ops_router(proxy))``.
    """
    router = APIRouter()

    async def fal_ops(request: Request) -> Response:
        return _OpsCall(proxy)

    for path in proxy.ops.paths:
        router.add_api_route(path, fal_ops, methods=["GET", "HEAD"], include_in_schema=False)
    return router
