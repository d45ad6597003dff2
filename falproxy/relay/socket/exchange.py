"""What a front end gives the socket relay for one WebSocket: its only I/O.

The ASGI app implements it over ``receive``/``send`` messages (with the WebSocket Denial
Response extension); the native server protocol over its transport and a frame codec.
Messages are whole (text as ``str``, binary as ``bytes``): fragmentation, masking, pings
and the closing handshake toward the client are the front end's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from falproxy.core.answers import Answer
from falproxy.core.types import Scope

__all__ = ["VANISHED", "ClientGone", "SocketClosed", "SocketExchange", "SocketMessage"]

# RFC 6455 7.1.5: "closed abnormally", a peer that vanished without a close frame.
VANISHED: Final = 1006


@dataclass(frozen=True, slots=True)
class SocketClosed:
    """The client closed: its close frame's code (1005 if it gave none), or 1006 if it
    vanished without a close frame."""

    code: int
    reason: str = ""


SocketMessage = str | bytes | SocketClosed


class ClientGone(Exception):
    """Sending to a client whose connection is already gone."""


class SocketExchange(Protocol):
    """One WebSocket handshake as a front end received it, and the ways to answer it.

    Before the upgrade exactly one of :meth:`deny` or :meth:`accept` is called; after
    :meth:`accept`, messages flow until :meth:`receive` returns a :class:`SocketClosed`
    or the relay calls :meth:`close`.
    """

    @property
    def scope(self) -> Scope:
        """An ASGI-shaped ``websocket`` scope (headers, path, query, client, subprotocols)."""
        ...

    async def deny(self, answer: Answer) -> None:
        """Refuse the upgrade with ``answer`` as a whole HTTP response."""
        ...

    async def accept(self, subprotocol: str | None) -> None:
        """Complete the upgrade (101), naming ``subprotocol`` if one was chosen."""
        ...

    async def receive(self) -> SocketMessage:
        """The client's next whole message, or how it closed."""
        ...

    async def send(self, data: str | bytes) -> None:
        """Send one message (text for ``str``); :class:`ClientGone` if the client left.

        Returns once the front end has room for more (back-pressure toward the upstream).
        """
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close toward the client with ``code``; nothing happens if it is already gone."""
        ...
