"""``NativeSocket``: one upgraded client connection of ``falproxy serve``, frame by frame.

It owns the transport from the end of the request head on (``transport.set_protocol``)
and is the native :class:`~falproxy.relay.socket.exchange.SocketExchange`: until the
session accepts or denies, reading is paused and the bytes that came after the head are
kept; then it writes the 101 (or the JSON refusal) and speaks RFC 6455 frames with the
``websockets`` library's sans-I/O protocol, built already OPEN with no extension.

Every buffer is bounded: a message is at most ``max_size`` bytes (1009 above it); reading
pauses while the messages received and not yet taken by the relay pass
:data:`INBOX_HIGH_WATER`; a send waits while the transport's write buffer is over its
high-water mark, so a slow client holds fal back and a slow fal holds the client back.
Pings go to the client every ``ping_interval`` seconds; no pong within ``ping_timeout``
drops the connection (1006), as uvicorn's own WebSocket protocols do.

A relayed socket (``spliced=True``) uses this class only for its handshake: after the 101
:meth:`NativeSocket.hand_over` gives the transport to the frame relay
(:mod:`falproxy.relay.socket.splice`), which keeps the same rules (cap, pings to the
client, shutdown with 1012) frame by frame.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Callable
from typing import Final

from uvicorn.server import ServerState
from websockets.exceptions import PayloadTooBig
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from falproxy.core.answers import Answer
from falproxy.core.types import Scope
from falproxy.relay.socket.close import MESSAGE_TOO_BIG
from falproxy.relay.socket.exchange import VANISHED, ClientGone, SocketClosed, SocketMessage
from falproxy.relay.socket.splice import Splice
from falproxy.standalone.native.ws_handshake import refusal_head, switching_head

__all__ = ["INBOX_HIGH_WATER", "NativeSocket"]

# Received messages not yet taken by the relay: reading pauses past this many bytes.
INBOX_HIGH_WATER: Final = 64 * 1024
# How long our close frame may wait for the client's before the TCP link is dropped.
CLOSE_TIMEOUT: Final = 5.0
# RFC 6455 7.4.1: 1012, the server is restarting (graceful shutdown of a worker).
SERVICE_RESTART: Final = 1012
TOO_BIG_REASON: Final = "message too big"


class _QuietInfo(logging.Filter):
    """websockets logs "connection closed" at INFO for every server connection; drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.INFO


frame_logger = logging.getLogger("falproxy.standalone.native.frames")
frame_logger.addFilter(_QuietInfo())


def _failure(exc: Exception, frames: ServerProtocol) -> SocketClosed:
    """How the client's side ended when its frames broke a rule (size, protocol, UTF-8)."""
    if isinstance(exc, PayloadTooBig):
        return SocketClosed(MESSAGE_TOO_BIG, TOO_BIG_REASON)
    sent = frames.close_sent  # the close frame the protocol sent when it failed
    return SocketClosed(sent.code, sent.reason) if sent else SocketClosed(VANISHED)


class NativeSocket(asyncio.Protocol):
    """The client side of one relayed (or fake) WebSocket, after the request head."""

    def __init__(
        self,
        transport: asyncio.Transport,
        scope: Scope,
        received: bytes,
        *,
        accept_key: bytes,
        loop: asyncio.AbstractEventLoop,
        server_state: ServerState,
        defaults: bytes,
        max_size: int,
        ping_interval: float | None,
        ping_timeout: float | None,
        spliced: bool = False,
    ) -> None:
        self.transport = transport
        self._scope = scope
        self._pending = received  # bytes after the head, parsed once accepted
        self._accept_key = accept_key
        self.loop = loop
        self.server_state = server_state
        self._defaults = defaults
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._frames = ServerProtocol(state=State.OPEN, max_size=max_size, logger=frame_logger)
        self._inbox: collections.deque[SocketMessage] = collections.deque()
        self._inbox_bytes = 0
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.answered = False  # a 101 or a refusal was written
        self.accepted = False
        self.lost = False
        self._ended = False  # a SocketClosed is in the inbox
        # The frame relay takes the transport after the 101 (relay/socket/splice.py).
        self._spliced = spliced
        self._splice: Splice | None = None
        self.client_ping = (ping_interval, ping_timeout)

    # --- taking over the transport ---------------------------------------------------

    def take_over(self) -> None:
        """Become the transport's protocol; hold the client's bytes until the answer."""
        self.transport.set_protocol(self)
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self._pause_reading()

    # --- SocketExchange ----------------------------------------------------------------

    @property
    def scope(self) -> Scope:
        return self._scope

    async def deny(self, answer: Answer) -> None:
        if self.answered or self.lost:
            return
        self.answered = True
        self.transport.write(refusal_head(answer, self._defaults))
        self.transport.close()

    async def accept(
        self, subprotocol: str | None, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        if self.answered or self.lost:
            raise ClientGone()
        self.answered = self.accepted = True
        head = switching_head(self._accept_key, subprotocol, self._defaults, extra)
        self.transport.write(head)
        if self._spliced:
            return  # reading stays paused until the frame relay takes the transport
        pending, self._pending = self._pending, b""
        self._arm_ping()
        self._resume_reading()
        if pending:
            self.data_received(pending)

    async def receive(self) -> SocketMessage:
        while not self._inbox:
            if self.lost:  # gone, or asked again after its close was taken
                return SocketClosed(VANISHED)
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._inbox.popleft()
        if not isinstance(message, SocketClosed):
            self._inbox_bytes -= len(message)
            if self._inbox_bytes <= INBOX_HIGH_WATER // 2:
                self._resume_reading()
        return message

    async def send(self, data: str | bytes) -> None:
        if self.lost or self._frames.state is not State.OPEN:
            raise ClientGone()
        if isinstance(data, str):
            self._frames.send_text(data.encode())
        else:
            self._frames.send_binary(data)
        self._flush()
        while self._write_paused and not self.lost:
            self._drained = self.loop.create_future()
            await self._drained
        if self.lost:
            raise ClientGone()

    def hand_over(self, splice: Splice) -> bytes:
        """Give the transport to the frame relay; the client's frames received so far.

        The socket stays in the server's connections until the relay is done, so a
        graceful shutdown still reaches it (:meth:`shutdown` forwards to the relay).
        """
        self._splice = splice
        splice.done.add_done_callback(self._spliced_done)
        # Never used again: the relay reads frames itself. Dropped, so an open socket does
        # not keep a frame codec and a message queue alive (memory per idle socket).
        del self._frames, self._inbox
        pending, self._pending = self._pending, b""
        return pending

    def _spliced_done(self, _: object) -> None:
        self.lost = True
        self.server_state.connections.discard(self)

    async def close(self, code: int, reason: str) -> None:
        if self._splice is not None:
            return  # the frame relay closes both sides itself
        if self.lost or self.transport.is_closing():
            return
        if not self.accepted:
            self.transport.close()
            return
        if self._frames.state is State.OPEN:
            self._frames.send_close(code, reason)
            self._flush()
        self._later("close", CLOSE_TIMEOUT, self.transport.close)

    # --- asyncio.Protocol --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self.accepted:
            # Only what was in flight when reading paused: a client that keeps sending
            # before the handshake is answered is cut off.
            self._pending += data
            if len(self._pending) > INBOX_HIGH_WATER:
                self.transport.close()
            return
        self._frames.receive_data(data)
        for event in self._frames.events_received():
            if isinstance(event, Frame):  # a server built OPEN sees frames only
                self._on_frame(event)
        exc = self._frames.parser_exc
        if exc is not None and not self._ended:
            self._end(_failure(exc, self._frames))
        self._flush()
        if self._inbox_bytes > INBOX_HIGH_WATER:
            self._pause_reading()

    def eof_received(self) -> bool | None:
        if self.accepted:
            self._frames.receive_eof()
            self._flush()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server_state.connections.discard(self)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for future in (self._waiter, self._drained):
            if future is not None and not future.done():
                future.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # --- uvicorn's server hooks ----------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: tell the client the server restarts, and end the relay."""
        if self._splice is not None:
            self._splice.shutdown()
            return
        if not self.accepted:
            self.transport.close()
            return
        if self._frames.state is State.OPEN:
            self._frames.send_close(SERVICE_RESTART, "server shutting down")
            self._flush()
            self._end(SocketClosed(SERVICE_RESTART, "server shutting down"))
            self._later("close", CLOSE_TIMEOUT, self.transport.close)

    # --- frames ----------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.PONG:
            self._cancel("pong")
        elif opcode is Opcode.CLOSE:
            received = self._frames.close_rcvd
            code = received.code if received else VANISHED
            self._end(SocketClosed(code, received.reason if received else ""))
        elif opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            if opcode is not Opcode.CONT:
                self._fragment_text = opcode is Opcode.TEXT
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                self._message_done()

    def _message_done(self) -> None:
        data = b"".join(self._fragments)
        self._fragments = []
        if not self._fragment_text:
            self._push(data)
            return
        try:
            self._push(data.decode())
        except UnicodeDecodeError:  # RFC 6455 8.1: invalid UTF-8 fails the connection
            self._frames.fail(1007, "invalid UTF-8")
            self._end(SocketClosed(1007, "invalid UTF-8"))

    def _push(self, message: SocketMessage) -> None:
        if self._ended:
            return
        self._inbox.append(message)
        if not isinstance(message, SocketClosed):
            self._inbox_bytes += len(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _end(self, closed: SocketClosed) -> None:
        self._push(closed)
        self._ended = True

    def _flush(self) -> None:
        for chunk in self._frames.data_to_send():
            if chunk:
                if not self.transport.is_closing():
                    self.transport.write(chunk)
            else:  # the closing handshake is over: the server closes TCP (RFC 6455 7.1.1)
                self.transport.close()

    # --- pings and timers ----------------------------------------------------------------

    def _arm_ping(self) -> None:
        if self._ping_interval:
            self._later("ping", self._ping_interval, self._ping)

    def _ping(self) -> None:
        if self._frames.state is not State.OPEN or self.lost:
            return
        self._frames.send_ping(os.urandom(4))
        self._flush()
        if self._ping_timeout:
            self._later("pong", self._ping_timeout, self.transport.close)
        self._arm_ping()

    def _later(self, name: str, delay: float, callback: Callable[[], object]) -> None:
        self._cancel(name)
        if not self.lost:
            self._timers[name] = self.loop.call_later(delay, callback)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self.lost:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and not self.lost:
            self._reading_paused = False
            self.transport.resume_reading()
