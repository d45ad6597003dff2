"""The rules of a WebSocket handshake that differ from an HTTP call's, with no I/O.

Browsers cannot set headers on a ``WebSocket``, so the target may also come in the
``fal_target_url`` query parameter of the proxy URL. Only ``wss`` targets on fal's socket
hosts pass, and only a few handshake headers are forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote_to_bytes

from falproxy.core.errors import InvalidTarget, MissingTarget, OriginNotAllowed
from falproxy.core.headers import (
    CLIENT_PROXY_HEADER,
    FAL_HEADER_PREFIX,
    TARGET_HEADER,
    field_value,
)
from falproxy.core.origins import origin_allowed
from falproxy.core.targets import Target, parse_target_header

# fal's WebSocket hosts (docs/fal-protocol.md §2): realtime on fal.run, HTTP-over-WS on
# ws.fal.run. REST and queue hosts serve no sockets, so a wss:// target there is refused.
WS_HOSTS: Final = frozenset({"fal.run", "ws.fal.run"})
# Where a browser puts the target, since it cannot set x-fal-target-url on a WebSocket.
TARGET_QUERY_PARAM: Final = b"fal_target_url"
# Handshake headers worth passing to fal besides x-fal-*; never cookies, Origin or the
# browser's Authorization (the app's secrets), nor Sec-WebSocket-* (per connection).
WS_FORWARDED_HEADERS: Final = frozenset({b"user-agent", b"traceparent"})


def check_socket_origin(
    headers: Iterable[tuple[bytes, bytes]], scheme: str, allowed: Iterable[str]
) -> None:
    """Refuse (403) a handshake whose ``Origin`` is neither listed nor our own (origins.py).

    Checked before identity: a foreign page's socket must not reach the identity hooks,
    which would read the victim's cookie. A repeated ``Origin`` or ``Host`` is refused
    rather than guessed at.
    """
    origins: list[bytes] = []
    hosts: list[bytes] = []
    for name, value in headers:
        if name == b"origin":
            origins.append(value)
        elif name == b"host":
            hosts.append(value)
    if len(origins) > 1 or len(hosts) > 1:
        raise OriginNotAllowed()
    if not origin_allowed(
        origins[0].decode("latin-1") if origins else None,
        hosts[0].decode("latin-1") if hosts else None,
        scheme,
        allowed,
    ):
        raise OriginNotAllowed()


def read_socket_target(headers: Iterable[tuple[bytes, bytes]], query: bytes) -> Target:
    """The target from exactly one ``fal_target_url`` parameter or ``x-fal-target-url`` header.

    The parameter is percent-decoded exactly once; giving both, or either twice, is refused
    rather than guessed at. Only ``wss`` URLs on :data:`WS_HOSTS` pass.
    """
    values = [value for name, value in headers if name == TARGET_HEADER]
    values += _query_values(query, TARGET_QUERY_PARAM)
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


def socket_request_headers(
    headers: Iterable[tuple[bytes, bytes]], authorization: bytes
) -> tuple[tuple[bytes, bytes], ...]:
    """The handshake headers sent to fal: allow-listed ones, the key and our identity.

    Values must be printable ASCII, as on the HTTP paths (headers.field_value: else 400).
    """
    out = [
        (name, field_value(value))
        for name, value in headers
        if name in WS_FORWARDED_HEADERS
        or (name.startswith(FAL_HEADER_PREFIX) and name != TARGET_HEADER)
    ]
    out.append((b"authorization", authorization))
    out.append(CLIENT_PROXY_HEADER)
    return tuple(out)
