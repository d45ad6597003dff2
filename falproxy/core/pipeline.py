"""The pure first steps of every proxied call: method, route, request head and target.

No I/O: each takes values from the request and returns a value or raises ``ProxyError``.
The ASGI app, the WebSocket handshake and the WSGI adapter all call these, so a rule
added here reaches every front end.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from falproxy.core.errors import InvalidTarget, MethodNotAllowed, MissingTarget
from falproxy.core.headers import TARGET_HEADER
from falproxy.core.targets import Target, parse_target_header
from falproxy.core.types import Scope

# The methods fal's clients use (docs/fal-protocol.md §4); DELETE is harmless.
PROXIED_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
_ALLOW_HEADER = {"allow": ", ".join(sorted(PROXIED_METHODS))}
# Parsed targets are immutable, and a browser polls the same status URL every second:
# reuse the parse for short headers. Bounded in entries and key size (< 1 MiB of keys).
TARGET_CACHE_SIZE = 1024
TARGET_CACHE_MAX_KEY = 1024
_parse_target_cached = functools.lru_cache(maxsize=TARGET_CACHE_SIZE)(parse_target_header)


def route_path(scope: Scope) -> str:
    """The request path relative to where the app is mounted."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def check_method(method: str) -> None:
    if method not in PROXIED_METHODS:
        raise MethodNotAllowed(headers=_ALLOW_HEADER)


def target_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> Target:
    """The single ``x-fal-target-url`` among raw headers, parsed strictly (ASGI and WSGI)."""
    values = [value for name, value in headers if name == TARGET_HEADER]
    if not values:
        raise MissingTarget()
    if len(values) > 1:
        raise InvalidTarget("Exactly one x-fal-target-url header is allowed")
    if len(values[0]) <= TARGET_CACHE_MAX_KEY:
        return _parse_target_cached(values[0])
    return parse_target_header(values[0])
