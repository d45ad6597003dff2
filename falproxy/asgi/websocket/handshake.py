"""Admitting a WebSocket before the upgrade: the same target rules and policy as HTTP.

Browsers cannot set headers on a ``WebSocket``, so the target may also come in the
``fal_target_url`` query parameter of the proxy URL. Everything is decided here, before
the socket is accepted, so a refusal is a real HTTP response with a JSON ``detail``
(via the ASGI WebSocket Denial Response extension) rather than a socket that opens and
then closes: browsers and clients can tell "not allowed" from "dropped".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote_to_bytes

import anyio

from falproxy.core.errors import InvalidTarget, MissingTarget, ProxyError
from falproxy.core.headers import CLIENT_PROXY_HEADER, FAL_HEADER_PREFIX, TARGET_HEADER
from falproxy.core.hooks import Identity, Reply
from falproxy.core.targets import Target, parse_target_header
from falproxy.core.types import Scope, Send

if TYPE_CHECKING:  # the app imports this module; a runtime import would be circular
    from falproxy.asgi.app import FalProxy

__all__ = [
    "DENIAL_EXTENSION",
    "TARGET_QUERY_PARAM",
    "WS_FORWARDED_HEADERS",
    "WS_HOSTS",
    "WsAdmission",
    "admit_websocket",
    "deny_websocket",
    "read_ws_target",
]

# fal's WebSocket hosts (docs/fal-protocol.md §2): realtime on fal.run, HTTP-over-WS on
# ws.fal.run. REST and queue hosts serve no sockets, so a wss:// target there is refused.
WS_HOSTS: Final = frozenset({"fal.run", "ws.fal.run"})
# Where a browser puts the target, since it cannot set x-fal-target-url on a WebSocket.
TARGET_QUERY_PARAM: Final = b"fal_target_url"
# Handshake headers worth passing to fal besides x-fal-*; never cookies, Origin or the
# browser's Authorization (the app's secrets), nor Sec-WebSocket-* (per connection).
WS_FORWARDED_HEADERS: Final = frozenset({b"user-agent", b"traceparent"})
# ASGI WebSocket Denial Response extension: lets the app answer the upgrade with HTTP.
DENIAL_EXTENSION: Final = "websocket.http.response"
# What a server without the extension answers when the app closes before accepting.
_CLOSE_BEFORE_ACCEPT: Final = {"type": "websocket.close", "code": 1008}


@dataclass(frozen=True, slots=True)
class WsAdmission:
    """A socket the proxy agreed to relay, and how to open its upstream."""

    target: Target  # validated, wss, on a WebSocket host
    app_id: str | None  # the fal app, for events
    url: str  # where to connect: the target, or its --upstream mapping (ws:// or wss://)
    headers: tuple[tuple[str, str], ...]  # handshake headers for fal, the key included
    subprotocols: tuple[str, ...]  # what the client offered, offered to fal in turn
    identity: Identity | None = None  # who called, when an auth hook said so
    reply: Reply | None = None  # a before_request hook's refusal, sent instead of relaying


def read_ws_target(scope: Scope) -> Target:
    """The target from exactly one ``fal_target_url`` parameter or ``x-fal-target-url`` header.

    The parameter is percent-decoded exactly once; giving both, or either twice, is refused
    rather than guessed at. Only ``wss`` URLs on :data:`WS_HOSTS` pass.
    """
    values = [value for name, value in scope["headers"] if name == TARGET_HEADER]
    values += _query_values(scope.get("query_string", b""), TARGET_QUERY_PARAM)
    if not values:
        raise MissingTarget(
            "Missing the fal_target_url query parameter (or the x-fal-target-url header)"
        )
    if len(values) > 1:
        raise InvalidTarget("Give the target exactly once: one fal_target_url or one header")
    return parse_target_header(values[0], scheme="wss", allowed_hosts=WS_HOSTS)


def _query_values(query: bytes, name: bytes) -> list[bytes]:
    """Every value of ``name`` in a query string, each percent-decoded once."""
    found = []
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == name:
            found.append(unquote_to_bytes(value))
    return found


def forwarded_headers(scope: Scope, authorization: bytes) -> tuple[tuple[str, str], ...]:
    """The handshake headers sent to fal: allow-listed ones, the key and our identity."""
    out = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name in WS_FORWARDED_HEADERS
        or (name.startswith(FAL_HEADER_PREFIX) and name != TARGET_HEADER)
    ]
    out.append(("authorization", authorization.decode("latin-1")))
    out.append((CLIENT_PROXY_HEADER[0].decode(), CLIENT_PROXY_HEADER[1].decode()))
    return tuple(out)


async def admit_websocket(proxy: FalProxy, scope: Scope) -> WsAdmission:
    """Decide, before the upgrade, whether and where this socket is relayed.

    Target, policy, then the proxy's admission (identity, before_request, rate limit and
    key): the very steps of an HTTP call. Raises :class:`ProxyError`; the caller turns it,
    or a hook's ``reply``, into an HTTP denial.
    """
    target = read_ws_target(scope)
    app_id = proxy.policy.check(target)
    admission = await proxy.admit(scope, target, app_id)
    return WsAdmission(
        target=target,
        app_id=app_id,
        url=proxy.upstreams.url_for(target),
        headers=forwarded_headers(scope, admission.authorization),
        subprotocols=tuple(scope.get("subprotocols") or ()),
        identity=admission.identity,
        reply=admission.reply,
    )


async def deny_websocket(scope: Scope, send: Send, error: ProxyError | Reply) -> None:
    """Refuse the upgrade with ``error`` as an HTTP response when the server supports it.

    Without the denial extension the only option is closing before accepting, which ASGI
    servers answer with a bare 403.
    """
    if DENIAL_EXTENSION not in (scope.get("extensions") or {}):
        await send(_CLOSE_BEFORE_ACCEPT)
        return
    if isinstance(error, Reply):
        body = error.encoded()
        status, headers = error.status, error.raw_headers(body)
    else:
        body, status, headers = error.body(), error.status, error.response_headers()
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
    # uvicorn's websockets-sansio protocol logs a spurious "returned without completing
    # handshake" error if the app returns before it has seen its own transport close;
    # one turn of the event loop lets that happen first.
    await anyio.sleep(0)
