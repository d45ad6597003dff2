"""Django: an ASGI dispatcher for streaming and WebSockets, and a view for WSGI.

Under ASGI, Django reads a request's whole body before any view runs and refuses
WebSockets, so :func:`fal_proxy_asgi` sends the proxy route to the core ``FalProxy``
before Django sees it (request and response stream, the client's departure cancels the
upstream call, and the dispatcher gives the proxy the lifespan Django does not handle):

    # asgi.py
    application = fal_proxy_asgi(get_asgi_application())  # FalProxy() from the environment

The dispatcher also sends the operational endpoints (``/healthz``, ``/readyz``,
``/metrics``) to the proxy.

:func:`fal_proxy_urls` is the one line for ``urls.py`` (``urlpatterns = [*fal_proxy_urls(),
...]``): the proxy route, a view on the sync pipeline whose streamed body closes the
upstream response when the server closes it (the response ended, or a write to the gone
client failed), and the operational endpoints. Made for WSGI (gunicorn, mod_wsgi); under
ASGI it streams too (an async iterator), but Django has read the whole request body first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from falproxy.config.extras import framework_import_error

try:
    from asgiref.sync import sync_to_async
    from django.core.handlers.asgi import ASGIRequest
    from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
    from django.urls import URLPattern, path
    from django.views.decorators.csrf import csrf_exempt
except ModuleNotFoundError:  # one line naming the extra, not a bare ImportError
    raise framework_import_error("django", "Django", "django") from None

from falproxy.asgi.app import FalProxy
from falproxy.core.pipeline import route_path
from falproxy.core.types import Receive, Scope, Send
from falproxy.wsgi.body import Readable
from falproxy.wsgi.environ import environ_client, environ_headers, environ_socket
from falproxy.wsgi.proxy import SyncFalProxy, SyncReply

View = Callable[[HttpRequest], HttpResponseBase]
# Django's ASGIHandler is typed with narrower dict/Mapping parameters than ASGIApp.
DjangoASGI = Callable[..., Awaitable[Any]]


class ProxyDispatcher:
    """ASGI: the proxy route (HTTP, WebSocket) and lifespan go to the proxy, the rest to Django."""

    def __init__(self, django_app: DjangoASGI, proxy: FalProxy) -> None:
        self.django_app = django_app
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._for_proxy(scope):
            await self.proxy(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)

    def _for_proxy(self, scope: Scope) -> bool:
        if scope["type"] == "lifespan":  # Django's ASGIHandler refuses lifespan scopes
            return True
        if scope["type"] == "http" and self.proxy.ops.match(route_path(scope)) is not None:
            return True
        return scope["type"] in ("http", "websocket") and self.proxy.serves_path(scope)


def fal_proxy_asgi(django_app: DjangoASGI, proxy: FalProxy | None = None) -> ProxyDispatcher:
    """Wrap Django's ASGI application so the proxy route bypasses Django."""
    return ProxyDispatcher(django_app, proxy if proxy is not None else FalProxy())


def fal_proxy_view(proxy: SyncFalProxy) -> View:
    """A Django view running the sync pipeline (for WSGI servers).

    CSRF-exempt: every call must carry the custom ``x-fal-target-url`` header, which a
    cross-site form cannot send and a cross-site ``fetch`` cannot without a CORS preflight.
    """

    @csrf_exempt
    def fal_proxy(request: HttpRequest) -> HttpResponseBase:
        reply = proxy.call(
            request.method or "",
            environ_headers(request.META),
            _input(request),
            client=environ_client(request.META),
            sock=environ_socket(request.META),
        )
        # The proxy relays fal's bytes as fal encoded them; GZipMiddleware re-compressing
        # them would hold every server-sent event back in its compressor's buffer.
        request.META.pop("HTTP_ACCEPT_ENCODING", None)
        return _response(request, reply)

    return fal_proxy


def fal_ops_view(proxy: SyncFalProxy) -> View:
    """A Django view answering the proxy's operational endpoints (``/healthz``, ...)."""

    def fal_ops(request: HttpRequest) -> HttpResponseBase:
        headers = environ_headers(request.META)
        reply = proxy.serve_ops("/" + request.path_info.lstrip("/"), request.method or "", headers)
        assert reply is not None  # routed here only for the endpoints' own paths
        return _response(request, reply)

    return fal_ops


def fal_proxy_urls(proxy: SyncFalProxy | None = None) -> list[URLPattern]:
    """The ``urls.py`` entries: the proxy route and the operational endpoints.

    ``urlpatterns = [*fal_proxy_urls(), ...]``; the proxy comes from the environment when
    omitted.
    """
    proxy = proxy if proxy is not None else SyncFalProxy()
    ops = fal_ops_view(proxy)
    patterns = [path(proxy.config.route.lstrip("/"), fal_proxy_view(proxy), name="fal-proxy")]
    patterns += [path(route.lstrip("/"), ops) for route in proxy.ops.paths]
    return patterns


def fal_proxy_path(proxy: SyncFalProxy | None = None) -> URLPattern:
    """The ``urls.py`` entry for the proxy route alone (see :func:`fal_proxy_urls`)."""
    proxy = proxy if proxy is not None else SyncFalProxy()
    return path(proxy.config.route.lstrip("/"), fal_proxy_view(proxy), name="fal-proxy")


def _response(request: HttpRequest, reply: SyncReply) -> HttpResponseBase:
    """The reply as a streaming Django response that adds no headers of its own."""
    body = _async_chunks(reply.body) if isinstance(request, ASGIRequest) else reply.body
    response = StreamingHttpResponse(body, status=reply.status)
    del response["Content-Type"]  # Django's text/html default; the reply's own is copied below
    for name, value in reply.headers:
        response[name] = value
    return response


async def _async_chunks(body: Iterable[bytes]) -> AsyncIterator[bytes]:
    """The sync body pulled chunk by chunk on a worker thread.

    Under ASGI, Django reads a sync iterator to its end before sending anything (every
    event of a stream would arrive at once); an async iterator streams. When the client
    leaves, Django cancels the response and the ``finally`` closes the upstream response.
    """
    chunks = iter(body)
    pull = sync_to_async(_next_chunk, thread_sensitive=False)
    try:
        while (chunk := await pull(chunks)) is not None:
            yield chunk
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=False)()


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


def _input(request: HttpRequest) -> Readable:
    """Where the body is read from.

    Django reads a request without ``Content-Length`` as empty, so a chunked body is read
    from the server's input directly when the server says it ends there (PEP 3333's
    ``wsgi.input_terminated``, set by gunicorn and Werkzeug).
    """
    meta = request.META
    if not meta.get("CONTENT_LENGTH") and meta.get("wsgi.input_terminated"):
        stream: Readable = meta["wsgi.input"]
        return stream
    return request
