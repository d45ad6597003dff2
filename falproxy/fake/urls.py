"""Building URLs that point back at the fake, or at public fal hosts.

The fake may be served at the root of its own port or mounted under a prefix inside another
app (``/_fake``). Starlette's ``request.base_url`` names the *outermost* app's root, so the fake
remembers the ``root_path`` it was entered with and builds every self-URL from that.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

ROOT_SCOPE_KEY = "falproxy.fake.root_path"
PUBLIC_QUEUE_BASE = "https://queue.fal.run"  # clients must keep polling through their proxy


class RememberRoot:
    """Outermost middleware: note where the fake is mounted before routing changes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[ROOT_SCOPE_KEY] = scope.get("root_path", "")
        await self.app(scope, receive, send)


def self_base(request: Request, public_url: str | None) -> str:
    """The fake's own base URL without a trailing slash: ``public_url`` if configured."""
    if public_url:
        return public_url.rstrip("/")
    root = str(request.scope.get(ROOT_SCOPE_KEY, request.scope.get("root_path", "")))
    return str(request.url.replace(path=root.rstrip("/") or "/", query="", fragment="")).rstrip("/")


def queue_urls(app_id: str, request_id: str) -> dict[str, str]:
    """The public ``response_url``/``status_url``/``cancel_url`` of a queued request."""
    response_url = f"{PUBLIC_QUEUE_BASE}/{app_id}/requests/{request_id}"
    return {
        "response_url": response_url,
        "status_url": f"{response_url}/status",
        "cancel_url": f"{response_url}/cancel",
    }
