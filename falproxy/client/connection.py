"""One upstream HTTP/1.1 connection: an asyncio protocol parsing responses with llhttp.

One request at a time (no pipelining). The connection is a
:class:`~falproxy.wire.states.Machine` over the client table of :mod:`falproxy.wire.states`
(``IDLE`` -> ``SENDING`` -> ``AWAITING`` -> ``READING`` -> ``DONE`` -> back to ``IDLE`` in
the pool, or ``CLOSED``). The protocol only records what arrived: the head, the body bytes
not yet read, whether the message ended well framed, and whether the connection may carry
another request. Parsing stops at the end of the response: any byte after it (a second
response in the same read, a body on a 204) makes the connection unusable and is never
merged into the response. Waiting and timeouts belong to the caller
(:mod:`falproxy.client.client`, :mod:`falproxy.client.response`), which sleeps on one
future at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import httptools

from falproxy.wire.framing import response_has_body
from falproxy.wire.parsers import response_parser
from falproxy.wire.states import Client, ClientEvent, Machine, client_machine

# A response head (status line and headers) larger than this is refused (502): it bounds
# what is buffered before the head is complete. nginx's default buffers hold 4-8 KiB.
MAX_RESPONSE_HEAD_BYTES = 64 * 1024
# Unread response body above this pauses reading from the socket until the reader catches
# up, so a fast upstream and a slow client never pile up more than this plus one read.
READ_HIGH_WATER = 64 * 1024
EXTRA_BYTES = "bytes after the end of the response"


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing (head too large, a second message)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UpstreamConnection(asyncio.Protocol):
    """Transport plus the state of the response being read on it."""

    def __init__(self, origin: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.machine: Machine[Client, ClientEvent] = client_machine()
        self.reused = False  # carried an earlier request (so a failure may be a stale one)
        self.sent = 0  # bytes of the current request handed to the transport
        # Set by the pool while the connection is idle there, and only then.
        self.on_lost: Callable[[UpstreamConnection], None] | None = None
        self.on_gone: Callable[[UpstreamConnection], None] | None = None  # set by the client
        self.idle_timer: asyncio.TimerHandle | None = None  # the pool's, while armed
        self.idle_since = 0.0  # when the pool last took it back
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        # llhttp is ready for the next message after a complete one: reused while clean.
        self._llhttp: httptools.HttpResponseParser | None = None
        self._reset(head_only=False)

    # -- the response being read ------------------------------------------------------
    def _reset(self, *, head_only: bool) -> None:
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False  # the final response head arrived
        self.message_complete = False  # the response ended, well framed (it stays so)
        self.keep_alive = False
        self.close_framed = False  # no length, not chunked: the body ends when the socket does
        self.error: str | None = None
        self.got_bytes = False  # any byte of the response arrived
        self.body: list[bytes] = []
        self.buffered = 0
        self.read_paused = False
        self.sent = 0
        self._head_fed = 0
        self._head_size = 0
        self._interim = False
        self._framed = False

    @property
    def state(self) -> Client:
        return self.machine.state

    @property
    def lost(self) -> bool:
        return self.machine.state is Client.CLOSED

    def start(self, *, head_only: bool) -> None:
        """Ready for the response to a new request (``head_only`` for HEAD)."""
        self.machine.fire(ClientEvent.SEND)
        self._reset(head_only=head_only)
        if self._llhttp is None:
            self._llhttp = response_parser(self)
        self._parser = self._llhttp

    def request_sent(self) -> None:
        """The request's last byte was handed to the transport."""
        if not self.lost:
            self.machine.fire(ClientEvent.SENT)

    @property
    def reusable(self) -> bool:
        """May carry another request: open, last response read to its end, nothing extra."""
        return (
            self.machine.state is Client.DONE
            and self.keep_alive
            and self.buffered == 0
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def recycle(self) -> None:
        """Back to ``IDLE`` for the pool (only when :attr:`reusable`)."""
        self.machine.fire(ClientEvent.RECYCLE)
        self._parser = None

    @property
    def usable(self) -> bool:
        """Idle in the pool and still open: may be handed a new request."""
        return (
            self.machine.state is Client.IDLE
            and self.transport is not None
            and not self.transport.is_closing()
        )

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self.machine.state in (Client.IDLE, Client.DONE):
            # Bytes nobody asked for (between requests, or after a full response): the
            # connection can no longer be trusted to frame the next response.
            self.close()
            return
        self.got_bytes = True
        if not self.head_done:
            self._head_fed += len(data)
        try:
            parser.feed_data(data)
        except _Stop as stop:
            self._stopped(stop.reason)
        except httptools.HttpParserError as exc:
            context = exc.__context__
            self._stopped(context.reason if isinstance(context, _Stop) else "malformed response")
        if not self.head_done and self._head_fed > MAX_RESPONSE_HEAD_BYTES:
            self._fail("response head too large")
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._parser = None
        self.machine.fire(ClientEvent.CLOSE)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("upstream connection lost"))
        self._wake()
        if self.on_lost is not None:
            self.on_lost(self)
        self._gone()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.machine.state is Client.DONE:
            raise _Stop(EXTRA_BYTES)  # a second message: never merged into the first
        self._head_size = 0

    def on_status(self, reason: bytes) -> None:
        self._head_size += len(reason) + 15  # "HTTP/1.1 200 " and CRLF around the reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > MAX_RESPONSE_HEAD_BYTES:
            raise _Stop("response head too large")
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and value.lower().rstrip().endswith(b"chunked")
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): not the answer
            self._interim = True
            self.headers = []
            return
        self.status = status
        self.head_done = True
        self.machine.fire(ClientEvent.HEAD)
        has_body = response_has_body(status, head_request=self.head_only)
        self.close_framed = has_body and not self._framed
        if self.head_only:
            # A HEAD answer has no body, whatever its length says: the message ends here.
            self.keep_alive = self._parser.should_keep_alive()
            self.message_complete = True
            self._llhttp = None  # it still expects the body the head announced: never reused
            self.machine.fire(ClientEvent.COMPLETE)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > READ_HIGH_WATER and not self.read_paused and self.transport:
            self.read_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self._head_fed = 0
            return
        if self.head_only:
            return  # already complete at its head
        assert self._parser is not None
        self.keep_alive = self._parser.should_keep_alive() and not self.close_framed
        self.message_complete = True
        self.machine.fire(ClientEvent.COMPLETE)

    # -- used by the client and the response --------------------------------------------
    def take_body(self) -> bytes:
        """Every unread body byte, in order; reading resumes once the buffer is empty."""
        chunks, self.body, self.buffered = self.body, [], 0
        if self.read_paused and self.transport is not None and not self.lost:
            self.read_paused = False
            self.transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def wait(self, timeout: float | None) -> None:
        """Until something arrives or the connection ends; ``TimeoutError`` after ``timeout``."""
        loop = self.loop
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def write(self, data: bytes) -> None:
        if self.lost or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("upstream connection lost")
        self.transport.write(data)
        self.sent += len(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        if self._write_paused and not self.lost:
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self.lost:
            raise ConnectionResetError("upstream connection lost")

    def close(self) -> None:
        """Close for good (a broken or unwanted connection is aborted, not drained)."""
        self.machine.fire(ClientEvent.CLOSE)
        self._parser = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
        self._gone()

    def _gone(self) -> None:
        on_gone, self.on_gone = self.on_gone, None
        if on_gone is not None:
            on_gone(self)

    def _stopped(self, reason: str) -> None:
        """Parsing stopped: past a complete response the response stands, else it fails."""
        if self.machine.state is Client.DONE:
            self.close()  # the extra bytes are dropped with the connection
        else:
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        self.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
