"""Test-only endpoints under ``/__fake__``: read the counters, reset the state. No auth.

They reveal nothing secret: recorded requests are masked before they are stored.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .context import FakeContext


class IntrospectionEndpoints:
    """``GET /__fake__/stats`` and ``POST /__fake__/reset``."""

    def __init__(self, ctx: FakeContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        """Both routes, with their full paths."""
        return [
            Route("/__fake__/stats", self.stats, methods=["GET"]),
            Route("/__fake__/reset", self.reset, methods=["POST"]),
        ]

    async def stats(self, request: Request) -> Response:
        """Counters, the last request and recent submissions."""
        return JSONResponse(self.ctx.stats.snapshot())

    async def reset(self, request: Request) -> Response:
        """Forget everything except streams still open."""
        self.ctx.reset()
        return JSONResponse({"reset": True})
