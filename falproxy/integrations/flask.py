"""Flask: the proxy as a Blueprint on the sync pipeline, served by any threaded WSGI server.

Native WSGI rather than the ASGI core behind an ASGI-to-WSGI adapter, because such an
adapter loses request bodies sent without a length, never runs lifespan, and cannot tell
the upstream call that the client left. Here the response body is a WSGI iterable whose
``close()`` (called by the server when the response ends or a write to a gone client
fails) closes the upstream response.

    from falproxy.integrations.flask import register_fal_proxy
    register_fal_proxy(app)   # FALPROXY_ROUTE (default /api/fal/proxy), /healthz, /readyz, /metrics
"""

from __future__ import annotations

from falproxy.config.extras import framework_import_error

try:
    from flask import Blueprint, Flask, Response, request
except ModuleNotFoundError:  # one line naming the extra, not a bare ImportError
    raise framework_import_error("flask", "Flask", "flask") from None

from falproxy.wsgi.environ import environ_client, environ_headers, environ_socket
from falproxy.wsgi.proxy import SyncFalProxy, SyncReply

# Every method reaches the pipeline, which answers a JSON 405 for the ones not proxied;
# Flask's own automatic OPTIONS and HTML 405 would bypass it.
ROUTED_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


class RelayedResponse(Response):
    """A response that adds nothing: no default content type for fal's bodiless answers."""

    default_mimetype = None


def fal_proxy_blueprint(proxy: SyncFalProxy | None = None, *, name: str = "falproxy") -> Blueprint:
    """A Blueprint serving ``proxy.config.route`` and the operational endpoints.

    The proxy comes from the environment if omitted.
    """
    proxy = proxy if proxy is not None else SyncFalProxy()
    blueprint = Blueprint(name, __name__)

    def fal_proxy() -> Response:
        reply = proxy.call(
            request.method,
            environ_headers(request.environ),
            request.stream,
            client=environ_client(request.environ),
            sock=environ_socket(request.environ),
        )
        return _response(reply)

    def fal_ops() -> Response:
        headers = environ_headers(request.environ)
        reply = proxy.serve_ops(request.path, request.method, headers)
        assert reply is not None  # routed here only for the endpoints' own paths
        return _response(reply)

    blueprint.add_url_rule(
        proxy.config.route,
        view_func=fal_proxy,
        methods=ROUTED_METHODS,
        provide_automatic_options=False,
    )
    for path in proxy.ops.paths:
        blueprint.add_url_rule(path, endpoint=f"ops{path}", view_func=fal_ops, methods=["GET"])
    return blueprint


def _response(reply: SyncReply) -> Response:
    return RelayedResponse(
        reply.body, status=reply.status, headers=reply.headers, direct_passthrough=True
    )


def register_fal_proxy(app: Flask, proxy: SyncFalProxy | None = None) -> SyncFalProxy:
    """Register the proxy route on ``app``; returns the proxy (call ``close()`` at exit)."""
    proxy = proxy if proxy is not None else SyncFalProxy()
    app.register_blueprint(fal_proxy_blueprint(proxy))
    return proxy
