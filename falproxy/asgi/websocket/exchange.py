"""``AsgiSocketExchange``: the socket relay's I/O over ASGI ``receive``/``send`` messages.

Refusals go out through the WebSocket Denial Response extension (handshake.py); messages,
accept and close are the ASGI WebSocket messages. Back-pressure is the server's: uvicorn
pauses reading until the app receives, and its ``send`` waits for the transport to drain.
"""

from __future__ import annotations

import contextlib

from falproxy.asgi.websocket.handshake import deny_websocket
from falproxy.core.answers import Answer
from falproxy.core.types import Message, Receive, Scope, Send
from falproxy.relay.socket.exchange import VANISHED, ClientGone, SocketClosed, SocketMessage

__all__ = ["AsgiSocketExchange"]


class AsgiSocketExchange:
    """One ASGI ``websocket`` scope as a :class:`~falproxy.relay.socket.exchange.SocketExchange`."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send

    @property
    def scope(self) -> Scope:
        return self._scope

    async def deny(self, answer: Answer) -> None:
        await deny_websocket(self._scope, self._send, answer)

    async def accept(self, subprotocol: str | None) -> None:
        try:
            await self._send({"type": "websocket.accept", "subprotocol": subprotocol})
        except OSError:  # the client left while fal was being dialled
            raise ClientGone() from None

    async def receive(self) -> SocketMessage:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                return _closed(message)
            if message["type"] != "websocket.receive":
                continue
            data: bytes | None = message.get("bytes")
            if data is not None:
                return data
            text: str = message.get("text") or ""
            return text

    async def send(self, data: str | bytes) -> None:
        key = "text" if isinstance(data, str) else "bytes"
        try:
            await self._send({"type": "websocket.send", key: data})
        except OSError:  # ASGI: sending to a client that is gone raises an OSError
            raise ClientGone() from None

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(OSError):  # already gone: nothing left to tell it
            await self._send({"type": "websocket.close", "code": code, "reason": reason})


def _closed(message: Message) -> SocketClosed:
    """The client's close, telling a lost connection from an empty close frame.

    uvicorn's websockets-sansio protocol reports a connection lost after the handshake as
    code 1005 with no ``reason`` key, while a real close frame always comes with one; the
    former is a vanished client (1006), the latter a normal close without a code.
    """
    code: int = message.get("code", 1005)
    if code == 1005 and "reason" not in message:
        code = VANISHED
    return SocketClosed(code, message.get("reason") or "")
