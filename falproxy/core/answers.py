"""``Answer``: a response the proxy writes itself, as a plain value.

Refusals, hook replies, CORS preflights and the operational endpoints are all answers.
Each front end has exactly one function that writes an answer to its transport (ASGI
HTTP, the WebSocket denial response, WSGI), so every refusal looks the same everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from falproxy.core.errors import ProxyError, json_headers

RawHeaders = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Answer:
    """Status, raw headers (content-length included) and the whole body."""

    status: int
    headers: RawHeaders
    body: bytes = b""

    @classmethod
    def of_error(cls, error: ProxyError) -> Answer:
        """The JSON ``{"detail": ...}`` refusal of ``error``."""
        return cls(error.status, tuple(error.response_headers()), error.body())

    @classmethod
    def json(cls, status: int, payload: object, headers: dict[str, str] | None = None) -> Answer:
        """A JSON answer; ``headers`` are added after the content headers."""
        body = json.dumps(payload).encode()
        return cls(status, tuple(json_headers(len(body), headers)), body)

    @classmethod
    def empty(cls, status: int, headers: RawHeaders = ()) -> Answer:
        """An answer with no body (a CORS preflight's 204)."""
        return cls(status, (*headers, (b"content-length", b"0")))

    @classmethod
    def raw(cls, status: int, body: bytes, content_type: bytes) -> Answer:
        """A non-JSON answer (the Prometheus exposition)."""
        length = str(len(body)).encode()
        return cls(status, ((b"content-type", content_type), (b"content-length", length)), body)

    def with_headers(self, extra: RawHeaders) -> Answer:
        """The same answer with ``extra`` headers appended (CORS grants)."""
        if not extra:
            return self
        return Answer(self.status, (*self.headers, *extra), self.body)
