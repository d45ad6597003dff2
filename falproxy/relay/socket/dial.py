"""Opening fal's WebSocket over a raw connection, for the frame relay (:mod:`.splice`).

The frame relay passes payload bytes through, so it needs fal's socket as a plain
transport rather than the ``websockets`` library's message-level connection
(:mod:`.upstream`, which the ASGI front end keeps). This module writes the RFC 6455
section 4.1 handshake itself, with the same rules as :mod:`.upstream`:

- exactly the headers the session gives (``Authorization: Key`` among them) plus the
  handshake's own; every name and value passes :mod:`falproxy.wire.fields`;
- TLS from :class:`~falproxy.client.settings.UpstreamSettings` (``FALPROXY_UPSTREAM_CA_FILE``
  included): a certificate failure is a 502 before a byte of the handshake is written;
- proxy environment variables never honoured, redirects never followed (a 3xx is a 502);
- no extension offered (permessage-deflate included), so an answer naming one is refused;
- the answer is read with the strict llhttp parser (:mod:`falproxy.wire.parsers`), its
  head capped, the whole opening bounded by ``open_timeout`` (504 past it).

Nothing here logs a header, so the key never reaches a log line.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Sequence
from types import TracebackType
from typing import Final, cast

import httptools

from falproxy.client.request import parse_target
from falproxy.core.errors import UpstreamTimeout, UpstreamUnavailable
from falproxy.relay.socket.upstream import REDIRECTS, WsLimits
from falproxy.wire.fields import valid_name, valid_value
from falproxy.wire.parsers import response_parser

__all__ = ["RawUpstream", "dial_upstream"]

ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
MAX_ANSWER_HEAD: Final = 64 * 1024  # the same head cap as every HTTP/1.1 head falproxy reads
# RFC 6455 section 4.1: the ws/wss schemes ride on http/https connections.
HTTP_SCHEMES: Final = {"wss": "https", "ws": "http"}
UNSENDABLE: Final = "A WebSocket handshake header cannot be sent to fal"


class _Answer(asyncio.Protocol):
    """Reads fal's answer to the handshake, then waits for the relay to take over."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.rest = b""  # frames that came with the answer's head
        self._name = b""
        self._size = 0
        self._parser = response_parser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            self.rest += data  # before the relay takes over: kept, and bounded by the cap
            if len(self.rest) > MAX_ANSWER_HEAD and self.transport is not None:
                self.transport.pause_reading()
            return
        self._size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.rest = data[upgrade.args[0] :]
            self._settle()
        except httptools.HttpParserError:
            self._settle(UpstreamUnavailable("fal's WebSocket answer could not be parsed"))
        else:
            if self._size > MAX_ANSWER_HEAD:
                self._settle(UpstreamUnavailable("fal's WebSocket answer head is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle(UpstreamUnavailable("fal closed the WebSocket connection"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._name = name.lower()
        self.headers.append((self._name, value))

    def on_headers_complete(self) -> None:
        # Settled here whatever the status: llhttp raises HttpParserUpgrade right after
        # (within the same feed) only when the 101 names an upgrade; one that does not is
        # refused by chosen_subprotocol instead of waiting out the open timeout.
        self.status = self._parser.get_status_code()
        self._settle()

    def _settle(self, error: Exception | None = None) -> None:
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


class RawUpstream:
    """fal's socket after its 101: a transport, the frames that came with the answer and
    the chosen subprotocol. ``async with`` guarantees the connection is dropped."""

    def __init__(self, transport: asyncio.Transport, rest: bytes, subprotocol: str | None) -> None:
        self.transport = transport
        self.rest = rest
        self.subprotocol = subprotocol

    async def __aenter__(self) -> RawUpstream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.transport.is_closing():
            self.transport.abort()


def handshake_head(
    url: str, headers: Sequence[tuple[bytes, bytes]], subprotocols: Sequence[str], key: bytes
) -> bytes:
    """The whole GET Upgrade request head (RFC 6455 section 4.1) for ``url``."""
    scheme, sep, rest = url.partition("://")
    target = parse_target(HTTP_SCHEMES.get(scheme.lower(), scheme) + sep + rest)
    lines = [
        b"GET " + target.path + b" HTTP/1.1\r\nhost: " + target.host_header + b"\r\n",
        b"upgrade: websocket\r\nconnection: Upgrade\r\n",
        b"sec-websocket-key: " + key + b"\r\nsec-websocket-version: 13\r\n",
    ]
    if subprotocols:
        lines.append(b"sec-websocket-protocol: " + ", ".join(subprotocols).encode() + b"\r\n")
    for name, value in headers:
        if not valid_name(name) or not valid_value(value):
            raise UpstreamUnavailable(UNSENDABLE)
        lines.append(name + b": " + value + b"\r\n")
    return b"".join(lines) + b"\r\n"


def chosen_subprotocol(
    answer: Sequence[tuple[bytes, bytes]], key: bytes, offered: Sequence[str]
) -> str | None:
    """The subprotocol of a valid 101 (RFC 6455 section 4.1, the client's checks)."""
    fields: dict[bytes, list[bytes]] = {}
    for name, value in answer:
        fields.setdefault(name, []).append(value.strip())
    expected = base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())
    upgrade = [v.lower() for v in fields.get(b"upgrade", [])]
    connection = b",".join(fields.get(b"connection", [])).lower().split(b",")
    if (
        upgrade != [b"websocket"]
        or b"upgrade" not in [token.strip() for token in connection]
        or fields.get(b"sec-websocket-accept") != [expected]
        or b"sec-websocket-extensions" in fields  # none was offered
    ):
        raise UpstreamUnavailable("fal's WebSocket answer is not a valid upgrade")
    chosen = fields.get(b"sec-websocket-protocol", [])
    if not chosen:
        return None
    protocol = chosen[0].decode("latin-1")
    if len(chosen) > 1 or protocol not in offered:
        raise UpstreamUnavailable("fal chose a subprotocol that was not offered")
    return protocol


async def dial_upstream(
    url: str,
    headers: Sequence[tuple[bytes, bytes]],
    subprotocols: Sequence[str],
    limits: WsLimits,
) -> RawUpstream:
    """Open fal's socket at ``url`` with exactly ``headers``; 502/504 ``ProxyError`` on failure."""
    key = base64.b64encode(os.urandom(16))
    head = handshake_head(url, headers, subprotocols, key)
    tls = url[:4].lower() == "wss:"
    target = parse_target(("https" if tls else "http") + url[url.index(":") :])
    loop = asyncio.get_running_loop()
    answer = _Answer()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(limits.open_timeout):
            connected, _ = await loop.create_connection(
                lambda: answer,
                target.host,
                target.port,
                ssl=limits.upstream.ssl_context() if tls else None,
                server_hostname=target.host if tls else None,
            )
            transport = connected
            transport.write(head)
            await answer.done
        status = answer.status
        if status != 101:
            if status in REDIRECTS:
                raise UpstreamUnavailable(
                    f"fal answered the WebSocket with a redirect (HTTP {status}); "
                    "redirects are never followed"
                )
            raise UpstreamUnavailable(f"fal refused the WebSocket (HTTP {status})")
        subprotocol = chosen_subprotocol(answer.headers, key, subprotocols)
    except TimeoutError:
        _drop(transport)
        raise UpstreamTimeout("fal did not accept the WebSocket in time") from None
    except OSError:
        _drop(transport)
        raise UpstreamUnavailable("The fal WebSocket could not be opened") from None
    except BaseException:
        _drop(transport)
        raise
    return RawUpstream(transport, answer.rest, subprotocol)


def _drop(transport: asyncio.Transport | None) -> None:
    if transport is not None and not transport.is_closing():
        transport.abort()
