"""CORS for a sidecar on another origin than the app that calls it.

Only origins listed in ``cors_origins`` (exact ``scheme://host[:port]``, or ``*``) get
CORS headers; any other origin gets none and the browser blocks the call. fal's own
CORS headers are always dropped from relayed responses. A preflight is
answered by the proxy itself and never reaches fal. The allowed request headers are the
ones fal's clients send; the exposed response headers let the browser read fal's request
id and the rate-limit answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from falproxy.core.types import Message, Scope, Send

# Request headers fal's clients send through a proxy (docs/fal-protocol.md §13), plus
# Authorization for the sidecar's own bearer tokens. Any `x-fal-*` header is allowed too.
ALLOWED_REQUEST_HEADERS = frozenset({"x-fal-target-url", "content-type", "authorization", "accept"})
FAL_HEADER_PREFIX = "x-fal-"
ALLOWED_METHODS = b"GET, POST, PUT, DELETE"
# fal's response headers a browser app reads, and the 429 answer.
EXPOSED_RESPONSE_HEADERS = (
    b"x-fal-request-id, x-fal-billable-units, x-fal-served-from, "
    b"retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset"
)
PREFLIGHT_MAX_AGE = b"600"  # seconds a browser may cache a preflight
ANY_ORIGIN = "*"


class CorsPolicy:
    """Which origins may call the proxy, and the headers that say so."""

    def __init__(self, origins: Sequence[str]) -> None:
        self._any = ANY_ORIGIN in origins
        self._origins = frozenset(origin.rstrip("/").lower() for origin in origins)

    @property
    def enabled(self) -> bool:
        return bool(self._origins)

    def allowed_origin(self, scope: Scope) -> bytes | None:
        """The request's ``Origin`` if it may call us, else None."""
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                origin = bytes(value)
                if self._any or origin.decode("latin-1").lower() in self._origins:
                    return origin
                return None
        return None

    def is_preflight(self, scope: Scope) -> bool:
        return scope["method"] == "OPTIONS" and any(
            name == b"access-control-request-method" for name, _ in scope.get("headers", ())
        )

    async def preflight(self, scope: Scope, send: Send) -> None:
        """Answer an ``OPTIONS`` preflight: 204 with the grants, or 403 for a stranger."""
        origin = self.allowed_origin(scope)
        if origin is None:
            await _empty(send, 403, [(b"vary", b"origin")])
            return
        requested = _requested_headers(scope)
        granted = ", ".join(h for h in requested if _allowed_header(h)).encode()
        headers = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-allow-headers", granted),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            (b"vary", b"origin"),
        ]
        await _empty(send, 204, headers)

    def wrap(self, scope: Scope, send: Send) -> Send:
        """A ``send`` that replaces fal's CORS headers with ours (none for strangers).

        fal answers with its own ``access-control-*`` (``*``); the proxy, not fal,
        decides which origins may read its responses, and a second Allow-Origin would
        make a browser reject the response anyway.
        """
        if not self._origins:
            return send  # fal's own CORS headers are already dropped by the relay's rules
        origin = self.allowed_origin(scope) if self._origins else None
        extra = (
            [
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", EXPOSED_RESPONSE_HEADERS),
                (b"vary", b"origin"),
            ]
            if origin is not None
            else []
        )

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", ()) if not _is_cors_header(h[0])]
                message = dict(message, headers=[*kept, *extra])
            await send(message)

        return send_with_cors


def _is_cors_header(name: bytes) -> bool:
    return name.lower().startswith(b"access-control-")


def _allowed_header(name: str) -> bool:
    return name in ALLOWED_REQUEST_HEADERS or name.startswith(FAL_HEADER_PREFIX)


def _requested_headers(scope: Scope) -> list[str]:
    names: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"access-control-request-headers":
            names.extend(h.strip().lower() for h in bytes(value).decode("latin-1").split(","))
    return [name for name in names if name]


async def _empty(send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
