"""Which browser origins may open a WebSocket through the proxy (cross-site hijacking).

An HTTP call is safe from other sites because its ``x-fal-target-url`` header forces a
CORS preflight, which only listed origins pass. A WebSocket has no preflight: any page
may open one, and the browser attaches the user's cookies. So a handshake that carries
``Origin`` (every browser sends one, RFC 6455 section 4.1 item 8) is allowed only from
an origin the operator listed, or, when none is listed, from the proxy's own origin.
A handshake without ``Origin`` comes from a server-side client, which no page controls.

Origins compare as RFC 6454 tuples (scheme, host, port) with default ports filled in,
so ``https://app.example`` and ``https://APP.example:443`` are the same origin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

__all__ = ["ANY_ORIGIN", "OriginTuple", "origin_allowed", "parse_origin"]

OriginTuple = tuple[str, str, int]

# The cors_origins entry that grants every origin (cors.py uses the same spelling).
ANY_ORIGIN: Final = "*"
# RFC 6455 4.1: the handshake's scheme, as the scheme of the origin that serves it.
_HTTP_SCHEME_OF: Final = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
# RFC 6454 4 step 6: an origin without a port has its scheme's default port.
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def parse_origin(value: str) -> OriginTuple | None:
    """``scheme://host[:port]`` as a tuple; None for anything else (``null`` included).

    An origin has no user info, path, query or fragment (RFC 6454 6.1); a value that
    does is not an origin and matches nothing.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def origin_allowed(
    origin: str | None, host: str | None, scheme: str, allowed: Iterable[str]
) -> bool:
    """Whether a handshake with this ``Origin`` may proceed.

    ``origin`` and ``host`` are the header values (None when absent), ``scheme`` the
    request's scheme (``ws``/``wss`` or ``http``/``https``), ``allowed`` the configured
    origins. No ``Origin``: allowed. Origins listed: only those (``*`` for any). None
    listed: only the request's own origin, ``scheme://Host``.
    """
    if origin is None:
        return True
    listed = tuple(allowed)
    if ANY_ORIGIN in listed:
        return True
    seen = parse_origin(origin)
    if seen is None:
        return False
    if listed:
        return seen in {parse_origin(entry) for entry in listed}
    own_scheme = _HTTP_SCHEME_OF.get(scheme.lower())
    if own_scheme is None or not host:
        return False
    return seen == parse_origin(f"{own_scheme}://{host}")
