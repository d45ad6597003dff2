"""Serve a WSGI app (Flask, or anything on SyncFalProxy) on a free loopback port.

werkzeug's threaded server, the one ``flask run`` uses: real sockets and real header
parsing (PEP 3333 latin-1 environ strings), in a background thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from falproxy.integrations.flask import register_fal_proxy
from falproxy.wsgi.proxy import SyncFalProxy


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Yields the base URL while the app is served; shuts the server down after."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def serve_sync_proxy(proxy: SyncFalProxy) -> Iterator[str]:
    """``proxy`` mounted in a Flask app (the shipped integration), served for real."""
    app = Flask("falproxy-test")
    register_fal_proxy(app, proxy)
    try:
        with serve_wsgi(app) as url:
            yield url
    finally:
        proxy.close()
