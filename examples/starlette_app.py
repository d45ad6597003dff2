"""Starlette with the proxy mounted as a plain ASGI app: ``app.mount(route, FalProxy())``.

uvicorn examples.starlette_app:app

FAL_KEY and every FALPROXY_* setting come from the environment. A plain mount serves HTTP
and WebSockets under its prefix only, so clients call the route with a trailing slash
(``/api/fal/proxy/``: Starlette answers the bare route with a 307 redirect to it) and the
operational endpoints (``/healthz``, ``/readyz``, ``/metrics``) are not served; use
``falproxy.integrations.fastapi.mount()`` to get both. A mounted app gets no lifespan, so
the app's own lifespan closes the proxy's upstream connections.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from examples.page import page
from falproxy import FalProxy, ProxyConfig

proxy = FalProxy(ProxyConfig.from_env())


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(page("Starlette", proxy.config.route.rstrip("/") + "/"))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await proxy.aclose()


app = Starlette(routes=[Route("/", index)], lifespan=lifespan)
app.mount(proxy.config.route, proxy)
