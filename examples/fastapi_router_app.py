"""FastAPI with the proxy on an ``APIRouter``, so the app's own dependencies run first.

uvicorn examples.fastapi_router_app:app

FAL_KEY and every FALPROXY_* setting come from the environment. ``fal_proxy_router`` serves
the proxy route (HTTP only: an ``APIRouter`` route carries no WebSockets; use ``mount()``
for the realtime relay); ``fal_ops_router`` adds ``/healthz``, ``/readyz`` and ``/metrics``;
``proxy_lifespan`` closes the proxy's upstream connections at shutdown.
"""

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from examples.page import page
from falproxy import FalProxy, ProxyConfig
from falproxy.integrations.fastapi import fal_ops_router, fal_proxy_router, proxy_lifespan

proxy = FalProxy(ProxyConfig.from_env())
app = FastAPI(lifespan=proxy_lifespan(proxy))
# Add `dependencies=[Depends(...)]` to refuse calls (HTTPException) before they reach fal.
app.include_router(fal_proxy_router(proxy))
app.include_router(fal_ops_router(proxy))


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    return page("FastAPI (router)", proxy.config.route)
