"""An ASGI ``websocket`` app run over a :class:`NativeSocket`: the fake fal in fake mode.

``falproxy serve --fake`` maps every fal host to the fake mounted beside the proxy, so the
proxy's own upstream sockets come back to this server under ``/_fake``. The native front
end serves those itself too: the ASGI app (the fake fal) gets ``websocket.connect``,
``websocket.receive`` and ``websocket.disconnect`` messages, and its ``accept``, ``send``,
``close`` and denial response (the WebSocket Denial Response extension) become frames or
an HTTP refusal on the native socket.
"""

from __future__ import annotations

from typing import Final

from falproxy.core.answers import Answer
from falproxy.core.types import ASGIApp, Message
from falproxy.relay.socket.exchange import ClientGone, SocketClosed
from falproxy.standalone.native.ws_connection import NativeSocket

__all__ = ["run_asgi_socket"]

# What ASGI servers answer when the app closes before accepting (no denial response).
_CLOSED_BEFORE_ACCEPT: Final = Answer.json(403, {"detail": "WebSocket refused"})


class _AsgiDriver:
    """The ``receive``/``send`` pair of one ASGI websocket call over a native socket."""

    def __init__(self, socket: NativeSocket) -> None:
        self.socket = socket
        self.connected = False
        self._denial: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self._denial_body = b""

    async def receive(self) -> Message:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        message = await self.socket.receive()
        if isinstance(message, SocketClosed):
            return {"type": "websocket.disconnect", "code": message.code, "reason": message.reason}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        socket = self.socket
        try:
            if kind == "websocket.accept":
                extra = tuple((bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ()))
                await socket.accept(message.get("subprotocol"), extra)
            elif kind == "websocket.send":
                data = message.get("bytes")
                await socket.send(data if data is not None else message.get("text") or "")
            elif kind == "websocket.close":
                if socket.accepted:
                    await socket.close(message.get("code", 1000), message.get("reason") or "")
                else:
                    await socket.deny(_CLOSED_BEFORE_ACCEPT)
            elif kind == "websocket.http.response.start":
                headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
                self._denial = (message["status"], headers)
            elif kind == "websocket.http.response.body":
                self._denial_body += message.get("body", b"")
                if not message.get("more_body", False):
                    await socket.deny(self._denial_answer())
        except ClientGone:
            raise OSError("the client is gone") from None  # what ASGI servers raise

    def _denial_answer(self) -> Answer:
        status, headers = self._denial or (403, [])
        body = self._denial_body
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        return Answer(status, tuple(headers), body)


async def run_asgi_socket(app: ASGIApp, socket: NativeSocket) -> None:
    """Run ``app`` for the socket's scope until it returns; close what it left open."""
    driver = _AsgiDriver(socket)
    await app(socket.scope, driver.receive, driver.send)
    if socket.accepted:
        await socket.close(1000, "")
