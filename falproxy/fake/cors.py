"""CORS for everything a browser may reach directly: upload URLs, CDN files, client-mode streams.

A tiny allow-all policy, as the fake has nothing to protect from other origins. Browsers do not
understand ``x-fal-*`` as a pattern, so preflights echo back the requested headers that match
``content-type``, ``authorization`` or ``x-fal-*``.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = "GET, POST, PUT"
ALLOW_HEADERS = ("content-type", "authorization")
ALLOW_HEADER_PREFIX = "x-fal-"
EXPOSE_HEADERS = "x-fal-request-id, etag"
MAX_AGE = "600"


def allowed_request_headers(requested: str) -> str:
    """The subset of ``Access-Control-Request-Headers`` the fake allows, comma-separated."""
    names = [n.strip().lower() for n in requested.split(",") if n.strip()]
    allowed = [n for n in names if n in ALLOW_HEADERS or n.startswith(ALLOW_HEADER_PREFIX)]
    return ", ".join(allowed or ALLOW_HEADERS)


class CorsMiddleware:
    """Answers preflights itself and adds ``access-control-*`` headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            requested = headers.get("access-control-request-headers", "")
            preflight = {
                "access-control-allow-origin": "*",
                "access-control-allow-methods": ALLOW_METHODS,
                "access-control-allow-headers": allowed_request_headers(requested),
                "access-control-max-age": MAX_AGE,
            }
            await Response(status_code=204, headers=preflight)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
