"""Flask with the fal proxy; FAL_KEY and every FALPROXY_* setting come from the environment.

``register_fal_proxy`` serves the proxy route and /healthz, /readyz and /metrics.

flask --app examples.flask_app run
gunicorn --worker-class gthread --threads 4 examples.flask_app:app

Try it with no key, against the fake fal (answers like fal's, nothing billed)::

    falproxy fake --port 9000 &
    FALPROXY_FAKE_URL=http://127.0.0.1:9000 flask --app examples.flask_app run

Started with neither a key nor the fake, it stops with the one line ``falproxy serve`` prints.
"""

from flask import Flask

from examples.page import page
from falproxy import ProxyConfig
from falproxy.integrations.flask import register_fal_proxy
from falproxy.wsgi.proxy import SyncFalProxy

app = Flask(__name__)
proxy = register_fal_proxy(app, SyncFalProxy(ProxyConfig.load()))


@app.get("/")
def index() -> str:
    return page("Flask", proxy.config.route)
