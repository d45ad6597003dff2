"""The fake's one error type and its JSON rendering.

Handlers raise :class:`FakeError` with the exact body fal would send (docs/fal-protocol.md
§12); Starlette's own 404/405 are rendered the same way so every answer is JSON.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Json = object  # a value json.dumps accepts; kept loose on purpose


class FakeError(Exception):
    """An HTTP answer that ends a handler early: status, JSON body and extra headers."""

    def __init__(
        self, status_code: int, body: Json, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})

    def response(self) -> Response:
        """The JSON response this error stands for."""
        return JSONResponse(self.body, self.status_code, headers=self.headers)


def detail(status_code: int, text: str) -> FakeError:
    """The common ``{"detail": text}`` error."""
    return FakeError(status_code, {"detail": text})


def typed_error(status_code: int, text: str, error_type: str) -> FakeError:
    """An infrastructure error: ``detail`` + ``error_type`` body and ``x-fal-error-type``."""
    body = {"detail": text, "error_type": error_type}
    return FakeError(status_code, body, {"x-fal-error-type": error_type})


async def handle_fake_error(request: Request, exc: Exception) -> Response:
    """Render a :class:`FakeError` raised by any handler."""
    assert isinstance(exc, FakeError)
    return exc.response()


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Render Starlette's routing errors (404, 405) as fal-style JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
