"""Counters and the last request seen, exposed at ``GET /__fake__/stats`` for tests.

Proxy tests need to assert things only the upstream can see: which headers arrived, whether a
stream was torn down when its client left. Credentials are masked before being stored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .redact import safe_headers, safe_query

AUTHORIZED_SCOPE_KEY = "falproxy.fake.authorized"  # set by auth.authorize on success
INTROSPECTION_PREFIX = "/__fake__"  # our own endpoints are not counted
MAX_SUBMITS = 50


@dataclass
class Stats:
    """Live counters. ``closed_streams`` counts every ended stream, disconnected ones included."""

    open_streams: int = 0
    closed_streams: int = 0
    disconnected_streams: int = 0
    requests: int = 0
    last_request: dict[str, Any] | None = None
    submits: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_SUBMITS))

    def stream_opened(self) -> None:
        """A streaming response started sending."""
        self.open_streams += 1

    def stream_closed(self, *, disconnected: bool) -> None:
        """A streaming response ended; ``disconnected`` when its client left first."""
        self.open_streams -= 1
        self.closed_streams += 1
        self.disconnected_streams += int(disconnected)

    def record_submit(
        self, request_id: str, endpoint: str, headers: Mapping[str, str], webhook: str | None
    ) -> None:
        """Remember a queue submission and the ``x-fal-*`` headers it carried."""
        fal_headers = {k: v for k, v in headers.items() if k.startswith("x-fal-")}
        entry = {"request_id": request_id, "endpoint": endpoint, "headers": fal_headers}
        self.submits.append({**entry, "webhook": webhook})

    def reset(self) -> None:
        """Forget history; streams still open stay counted so the counter never goes negative."""
        self.closed_streams = self.disconnected_streams = self.requests = 0
        self.last_request = None
        self.submits.clear()

    def snapshot(self) -> dict[str, Any]:
        """The JSON document served by the stats endpoint."""
        return {
            "open_streams": self.open_streams,
            "closed_streams": self.closed_streams,
            "disconnected_streams": self.disconnected_streams,
            "requests": self.requests,
            "last_request": self.last_request,
            "submits": list(self.submits),
        }


def describe(scope: Scope) -> dict[str, Any]:
    """A masked, JSON-ready description of an HTTP request."""
    return {
        "method": scope["method"],
        "path": scope["path"],
        "query": safe_query(scope.get("query_string", b"").decode("latin-1")),
        "headers": safe_headers(Headers(scope=scope)),
        "authorized": bool(scope.get(AUTHORIZED_SCOPE_KEY)),
    }


class StatsMiddleware:
    """Counts requests and keeps the last one; ``authorized`` is filled in when it answers."""

    def __init__(self, app: ASGIApp, stats: Stats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or f"{INTROSPECTION_PREFIX}/" in scope["path"]:
            await self.app(scope, receive, send)
            return
        record = describe(scope)
        self.stats.requests += 1
        self.stats.last_request = record

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                record["authorized"] = bool(scope.get(AUTHORIZED_SCOPE_KEY))
            await send(message)

        await self.app(scope, receive, send_and_note)
