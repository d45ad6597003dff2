"""FastAPI with the fal proxy; FAL_KEY and every FALPROXY_* setting come from the environment.

``mount`` serves the proxy route (HTTP and WebSockets) and /healthz, /readyz and /metrics.

uvicorn examples.fastapi_app:app
"""

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from examples.page import page
from falproxy import FalProxy, ProxyConfig
from falproxy.integrations.fastapi import mount

app = FastAPI()
proxy = mount(app, FalProxy(ProxyConfig.load()))


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    return page("FastAPI", proxy.config.route)
