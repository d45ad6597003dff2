"""FastAPI with the fal proxy; FAL_KEY and every FALPROXY_* setting come from the environment.

``mount`` serves the proxy route (HTTP and WebSockets) and /healthz, /readyz and /metrics.

uvicorn examples.fastapi_app:app

Try it with no key, against the fake fal (answers like fal's, nothing billed)::

    falproxy fake --port 9000 &
    FALPROXY_FAKE_URL=http://127.0.0.1:9000 uvicorn examples.fastapi_app:app

Started with neither a key nor the fake, it stops with the one line ``falproxy serve`` prints.
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
