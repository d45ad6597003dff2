"""CORS for a proxy called from another origin than its own: the rules, with no I/O.

Only origins listed in ``cors_origins`` (exact ``scheme://host[:port]``, or ``*``) get
CORS headers; any other origin gets none and the browser blocks the call. fal's own CORS
headers are always dropped from relayed responses (the proxy, not fal, decides which
origins may read them). A preflight is answered by the proxy itself and never reaches
fal; every front end asks :meth:`CorsPolicy.preflight` for the answer and writes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from falproxy.core.answers import Answer, RawHeaders

logger = logging.getLogger("falproxy.cors")

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
ORIGINS_VARIABLE = "FALPROXY_CORS_ORIGINS"
_VARY = (b"vary", b"origin")


class CorsPolicy:
    """Which origins may call the proxy, and the headers that say so."""

    def __init__(self, origins: Sequence[str]) -> None:
        self._any = ANY_ORIGIN in origins
        self._origins = frozenset(origin.rstrip("/").lower() for origin in origins)

    @property
    def enabled(self) -> bool:
        return bool(self._origins)

    def is_listed(self, origin: bytes) -> bool:
        """Whether ``origin`` (an ``Origin`` header value) is one of the configured ones."""
        return self._any or origin.decode("latin-1").lower() in self._origins

    def allowed_origin(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
        """The request's ``Origin`` if it may call us, else None."""
        origin = _origin(headers)
        return origin if origin is not None and self.is_listed(origin) else None

    @staticmethod
    def is_preflight(method: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        return method == "OPTIONS" and any(
            name == b"access-control-request-method" for name, _ in headers
        )

    def preflight(self, headers: Sequence[tuple[bytes, bytes]]) -> Answer:
        """The answer to an ``OPTIONS`` preflight: 204 with the grants, or a JSON refusal.

        Both refusals say what to change, since a developer reads them in the browser's
        network panel: CORS not enabled (405), or this origin not listed (403).
        """
        origin = _origin(headers)
        shown = origin.decode("latin-1")[:200] if origin is not None else "(none)"
        if not self.enabled:
            logger.warning("CORS preflight from %s refused: %s is not set", shown, ORIGINS_VARIABLE)
            detail = f"CORS is not enabled on this proxy: set {ORIGINS_VARIABLE} to allow an origin"
            return Answer.json(405, {"detail": detail}, {"allow": "GET, POST, PUT, DELETE"})
        if origin is None or not self.is_listed(origin):
            logger.warning("CORS preflight from %s refused: not in %s", shown, ORIGINS_VARIABLE)
            detail = f"Origin {shown} is not allowed: add it to {ORIGINS_VARIABLE}"
            return Answer.json(403, {"detail": detail}, {"vary": "origin"})
        granted = ", ".join(h for h in _requested_headers(headers) if _allowed_header(h)).encode()
        return Answer.empty(
            204,
            (
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-methods", ALLOWED_METHODS),
                (b"access-control-allow-headers", granted),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE),
                _VARY,
            ),
        )

    def response_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
        """The CORS headers added to any answer to this request (none for strangers)."""
        if not self._origins:
            return ()
        origin = self.allowed_origin(headers)
        if origin is None:
            return (_VARY,)
        return (
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", EXPOSED_RESPONSE_HEADERS),
            _VARY,
        )


def is_cors_header(name: bytes) -> bool:
    return name.lower().startswith(b"access-control-")


def _origin(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"origin":
            return bytes(value)
    return None


def _allowed_header(name: str) -> bool:
    return name in ALLOWED_REQUEST_HEADERS or name.startswith(FAL_HEADER_PREFIX)


def _requested_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    names: list[str] = []
    for name, value in headers:
        if name == b"access-control-request-headers":
            names.extend(h.strip().lower() for h in bytes(value).decode("latin-1").split(","))
    return [name for name in names if name]
