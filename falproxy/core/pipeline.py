"""The pure first steps of every proxied call: method, head, host, target and policy.

No I/O: :class:`Rules` takes an :class:`Incoming` (what any front end can say about a
request) and returns the validated target and its app, or raises ``ProxyError``. The ASGI
app, the WebSocket handshake and the WSGI adapter all go through it (via
:mod:`falproxy.admission.pipeline`), so a rule added here reaches every front end.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from falproxy.core.errors import InvalidTarget, MethodNotAllowed, MissingTarget
from falproxy.core.head import check_request_head
from falproxy.core.headers import TARGET_HEADER
from falproxy.core.hosts import HostRule
from falproxy.core.lifecycle import WEBSOCKET
from falproxy.core.policy import Policy
from falproxy.core.sockets import check_socket_origin, read_socket_target
from falproxy.core.targets import Target, parse_target_header
from falproxy.core.types import Scope

# The methods fal's clients use (docs/fal-protocol.md §4); DELETE is harmless.
PROXIED_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
ALLOW_HEADER = {"allow": ", ".join(sorted(PROXIED_METHODS))}
# Parsed targets are immutable, and a browser polls the same status URL every second:
# reuse the parse for short headers. Bounded in entries and key size (< 1 MiB of keys).
TARGET_CACHE_SIZE = 1024
TARGET_CACHE_MAX_KEY = 1024
_parse_target_cached = functools.lru_cache(maxsize=TARGET_CACHE_SIZE)(parse_target_header)


# Per call and read-only by convention: not frozen, whose __init__ is slower on the hot path.
@dataclass(slots=True)
class Incoming:
    """One request as every front end can describe it."""

    kind: str  # lifecycle.HTTP or lifecycle.WEBSOCKET
    method: str  # the HTTP method; "WEBSOCKET" for a handshake
    headers: Sequence[tuple[bytes, bytes]]  # raw, lower-case names
    scope: Scope  # the ASGI scope, or the ASGI-shaped view of a WSGI request (hooks read it)
    query: bytes = b""  # the raw query string (WebSocket targets may travel in it)


class Rules:
    """The pure checks of one proxy, built once from its settings."""

    def __init__(self, policy: Policy, hosts: HostRule, origins: Sequence[str] = ()) -> None:
        self.policy = policy
        self.hosts = hosts
        self.origins = tuple(origins)  # cors_origins: also the pages that may open sockets

    def check(self, incoming: Incoming) -> tuple[Target, str | None]:
        """Method, head limits, host, (a socket's origin), target and policy, in that order:
        (target, app id)."""
        if incoming.kind == WEBSOCKET:
            check_request_head(incoming.headers)
            self.hosts.check(incoming.headers)
            check_socket_origin(incoming.headers, incoming.scope.get("scheme", "ws"), self.origins)
            target = read_socket_target(incoming.headers, incoming.query)
        else:
            check_method(incoming.method)
            check_request_head(incoming.headers)
            self.hosts.check(incoming.headers)
            target = target_from_headers(incoming.headers)
        method = "GET" if incoming.kind == WEBSOCKET else incoming.method  # a handshake is a GET
        return target, self.policy.check(target, method)


def route_path(scope: Scope) -> str:
    """The request path relative to where the app is mounted."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def check_method(method: str) -> None:
    if method not in PROXIED_METHODS:
        raise MethodNotAllowed(headers=ALLOW_HEADER)


def target_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> Target:
    """The single ``x-fal-target-url`` among raw headers, parsed strictly."""
    values = [value for name, value in headers if name == TARGET_HEADER]
    if not values:
        raise MissingTarget()
    if len(values) > 1:
        raise InvalidTarget("Exactly one x-fal-target-url header is allowed")
    if len(values[0]) <= TARGET_CACHE_MAX_KEY:
        return _parse_target_cached(values[0])
    return parse_target_header(values[0])
