"""The opening handshake of RFC 6455 section 4.2.1, checked, and its answers, encoded.

Pure functions over the parsed request head: :func:`check_handshake` raises a
:class:`~falproxy.core.errors.ProxyError` (a JSON refusal) for anything section 4.2.1 does
not allow, and returns the ``Sec-WebSocket-Accept`` value (section 4.2.2) otherwise. The
``Host`` header is left to admission (a wrong host is 421 there, as on every front end).
No extension is ever accepted: see :mod:`falproxy.standalone.native.websocket` for why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

from falproxy.core.answers import Answer
from falproxy.core.errors import BadRequest, MethodNotAllowed
from falproxy.wire.writer import closing_answer

__all__ = [
    "check_handshake",
    "is_websocket_upgrade",
    "offered_subprotocols",
    "refusal_head",
    "switching_head",
]

# RFC 6455 section 1.3: appended to the client's key before hashing.
ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# RFC 6455 section 4.2.1 item 6: the only version this server speaks.
VERSION: Final = b"13"
KEY_BYTES: Final = 16  # RFC 6455 section 4.2.1 item 5: a base64-encoded 16-byte nonce
NOT_WEBSOCKET: Final = "Only WebSocket upgrades are served here; send the request without Upgrade"


def _tokens(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """The comma-separated tokens of every ``name`` field, stripped, in order."""
    return [
        token.strip()
        for field_name, value in headers
        if field_name == name
        for token in value.split(b",")
        if token.strip()
    ]


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value.strip() for field_name, value in headers if field_name == name]


def is_websocket_upgrade(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether the request asks to upgrade to exactly one protocol: ``websocket``."""
    return [token.lower() for token in _tokens(headers, b"upgrade")] == [b"websocket"]


def check_handshake(method: str, version: str, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The ``Sec-WebSocket-Accept`` value of a valid handshake; else raise the refusal.

    405 for a method other than GET (what the ASGI front end answers too), 400 for the
    rest of section 4.2.1: HTTP/1.1 or later, ``Upgrade: websocket``, ``Connection:
    Upgrade``, one ``Sec-WebSocket-Key`` of 16 bytes, one ``Sec-WebSocket-Version: 13``.
    """
    if method != "GET":
        raise MethodNotAllowed("A WebSocket handshake is a GET", headers={"allow": "GET"})
    if version != "1.1":  # llhttp parses HTTP/1.x only
        raise BadRequest("A WebSocket handshake needs HTTP/1.1")
    if not is_websocket_upgrade(headers):
        raise BadRequest(NOT_WEBSOCKET)
    if b"upgrade" not in [token.lower() for token in _tokens(headers, b"connection")]:
        raise BadRequest("A WebSocket handshake needs Connection: Upgrade")
    keys = _values(headers, b"sec-websocket-key")
    if len(keys) != 1 or not _nonce_ok(keys[0]):
        raise BadRequest("A WebSocket handshake needs one Sec-WebSocket-Key of 16 bytes")
    if _values(headers, b"sec-websocket-version") != [VERSION]:
        raise BadRequest(
            "Unsupported WebSocket version: this server speaks 13",
            headers={"sec-websocket-version": VERSION.decode()},
        )
    return base64.b64encode(hashlib.sha1(keys[0] + ACCEPT_GUID).digest())


def _nonce_ok(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == KEY_BYTES
    except (binascii.Error, ValueError):
        return False


def offered_subprotocols(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """The subprotocols the client offers, in its order (RFC 6455 section 4.1 item 10)."""
    return [token.decode("latin-1") for token in _tokens(headers, b"sec-websocket-protocol")]


def switching_head(
    accept: bytes,
    subprotocol: str | None,
    defaults: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """The whole ``101 Switching Protocols`` head (RFC 6455 section 4.2.2 item 5)."""
    lines = [
        b"HTTP/1.1 101 Switching Protocols\r\n",
        b"upgrade: websocket\r\nconnection: Upgrade\r\n",
        b"sec-websocket-accept: " + accept + b"\r\n",
    ]
    if subprotocol:
        lines.append(b"sec-websocket-protocol: " + subprotocol.encode("latin-1") + b"\r\n")
    lines.extend(name + b": " + value + b"\r\n" for name, value in extra)
    return b"".join(lines) + defaults + b"\r\n"


def refusal_head(answer: Answer, defaults: bytes) -> bytes:
    """A whole HTTP refusal of the upgrade that closes the connection."""
    return closing_answer(answer.status, answer.headers, answer.body, defaults)
