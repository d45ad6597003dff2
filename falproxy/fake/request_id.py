"""Stamps ``x-fal-request-id`` on every response that lacks one.

fal sets it on everything it produces, and clients rely on it (JS reads ``requestId`` from it;
Python treats a 5xx *without* it as an ingress error). Queue endpoints set the request's own id;
everything else gets a fresh UUID here.
"""

from __future__ import annotations

import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-fal-request-id"


class RequestIdMiddleware:
    """Adds a UUID ``x-fal-request-id`` unless the handler already set one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == HEADER for name, _ in headers):
                    headers.append((HEADER, str(uuid.uuid4()).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
