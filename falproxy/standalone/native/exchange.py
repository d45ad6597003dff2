"""One request on a native connection, as the relay's :class:`~falproxy.relay.exchange.Exchange`.

The body arrives from the parser into a bounded buffer (reading pauses past
:data:`BODY_HIGH_WATER`); the response is written straight to the transport, waiting for
the transport to drain when the client reads slowly — at most ``send_timeout`` seconds
(the stream idle timeout): a client that stops reading is dropped, and the relay and its
upstream connection are released, instead of being held open by it. The client leaving is known at
once (``connection_lost``): mid-body, reading the body raises ``ClientDisconnected``;
once the body is in, the relay is cancelled and the call recorded ``client_gone``, as
:class:`~falproxy.asgi.exchange.AsgiExchange` does with its disconnect watcher.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, Final

from falproxy.core.answers import Answer, RawHeaders
from falproxy.core.body import DEADLINE_DETAIL, BodyClock
from falproxy.core.errors import ClientDisconnected, RequestTimeout
from falproxy.core.headers import Headers
from falproxy.core.lifecycle import CallRecord
from falproxy.core.types import Scope
from falproxy.standalone.native.body import body_chunks
from falproxy.wire.framing import CHUNKED_END, CONTINUE, Framing, chunk
from falproxy.wire.writer import response_head

if TYPE_CHECKING:
    from falproxy.standalone.native.protocol import NativeHttpProtocol

# Request body bytes buffered before the connection stops reading (the relay drains it).
BODY_HIGH_WATER: Final = 64 * 1024


class NativeExchange:
    """A request's body as it arrives and its response as it is written."""

    __slots__ = (
        "_conn",
        "_framing",
        "_held",
        "_left",
        "_lost_waiter",
        "_relay_cancelled",
        "_relay_done",
        "_relay_record",
        "_relay_task",
        "_send_timeout",
        "_waiter",
        "body",
        "body_complete",
        "body_error",
        "closes",
        "expect_continue",
        "head_request",
        "http10",
        "keep_alive",
        "lost",
        "response_complete",
        "response_started",
        "scope",
    )

    def __init__(
        self,
        conn: NativeHttpProtocol,
        scope: Scope,
        *,
        keep_alive: bool,
        expect_continue: bool,
        body_complete: bool,
        send_timeout: float,
    ) -> None:
        self._conn = conn
        self._send_timeout = send_timeout
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.head_request = scope["method"] == "HEAD"
        self.http10 = scope["http_version"] == "1.0"
        self.body = bytearray()
        self.body_complete = body_complete
        self.body_error: Exception | None = None
        self.lost = False
        self.response_started = False
        self.response_complete = False
        self.closes = False  # the connection closes after this response
        self._framing: Framing = Framing.NONE
        self._left = 0
        self._held = b""  # a response head not written yet
        self._waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._relay_task: asyncio.Task[Any] | None = None
        self._relay_record: CallRecord | None = None
        self._relay_done: asyncio.Event | None = None
        self._relay_cancelled = False

    # --- fed by the connection ------------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        self.body += data
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        self._wake()

    def fail_body(self, error: Exception) -> None:
        """The body cannot be read any further (malformed framing)."""
        self.body_error = error
        self._wake()

    def connection_lost(self) -> None:
        """The client is gone: stop reading, and cancel the relay once the body is in."""
        self.lost = True
        self._wake()
        if self._lost_waiter is not None and not self._lost_waiter.done():
            self._lost_waiter.set_result(None)
        task, record, done = self._relay_task, self._relay_record, self._relay_done
        if task is None or record is None or done is None or self._relay_cancelled:
            return
        if done.is_set() and not record.complete:
            record.client_gone()
            self._relay_cancelled = True
            task.cancel()

    async def wait_lost(self) -> None:
        """Until the client leaves (for ASGI apps that watch for ``http.disconnect``)."""
        if not self.lost:
            if self._lost_waiter is None:
                self._lost_waiter = self._conn.loop.create_future()
            await self._lost_waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- Exchange: the request body ------------------------------------------------

    def body_chunks(self, max_bytes: int, clock: BodyClock) -> AsyncIterator[bytes]:
        return body_chunks(self, max_bytes, clock)

    def take_body(self) -> bytes | None:
        """The body bytes received so far (b"": none yet), or None once the body has ended.

        Raises ``ClientDisconnected`` once the client is gone and the body's framing error
        if it became unreadable; sends ``100 Continue`` the first time the relay waits.
        """
        if self.lost:
            raise ClientDisconnected()
        if self.body:
            data = bytes(self.body)
            self.body.clear()
            self._conn.body_drained()
            return data
        if self.body_error is not None:
            raise self.body_error
        if self.body_complete:
            return None
        if self.expect_continue:
            self.expect_continue = False
            if not self.response_started:
                self._conn.write(CONTINUE)
        return b""

    async def wait_for_body(self, clock: BodyClock) -> None:
        """Until more of the body arrives: 408 once ``clock`` runs out."""
        seconds = clock.next_wait(time.monotonic())
        if seconds <= 0:
            raise RequestTimeout(DEADLINE_DETAIL)
        self._waiter = self._conn.loop.create_future()
        try:
            async with asyncio.timeout(seconds):
                await self._waiter
        except TimeoutError:
            raise RequestTimeout(clock.timeout_detail(seconds)) from None
        finally:
            self._waiter = None

    # --- Exchange: the response ----------------------------------------------------

    async def answer(self, answer: Answer) -> None:
        head = self._start(answer.status, answer.headers)
        if head is None:
            return
        body = answer.body if self._framing in (Framing.LENGTH, Framing.CLOSE) else b""
        if self._framing == Framing.CHUNKED:
            body = (chunk(answer.body) if answer.body else b"") + CHUNKED_END
        self._conn.write(head + body)
        self._finish()

    async def start_response(self, status: int, headers: Headers) -> None:
        head = self._start(status, headers)
        if head is not None:
            # Held until the end of this loop iteration: a body chunk already received
            # (a small response usually comes whole) leaves in the same send.
            self._held = head
            self._conn.loop.call_soon(self.flush_head)

    def flush_head(self) -> None:
        """Write a held response head now (before a cut-off response is closed)."""
        held, self._held = self._held, b""
        if held:
            self._conn.write(held)

    async def send_body(self, data: bytes) -> None:
        conn = self._conn
        if conn.write_paused and not self.lost:
            await self._drain()
        if self.lost or not data:
            return
        framing = self._framing
        if framing == Framing.CHUNKED:
            data = chunk(data)
        elif framing == Framing.LENGTH:
            if len(data) > self._left:
                raise RuntimeError("response body longer than its Content-Length")
            self._left -= len(data)
        elif framing is not Framing.CLOSE:
            return  # no body on the wire (HEAD, 204, 304)
        held, self._held = self._held, b""
        conn.write(held + data if held else data)

    async def _drain(self) -> None:
        """Wait for the client to read; drop it if it reads nothing for ``send_timeout``."""
        try:
            async with asyncio.timeout(self._send_timeout):
                await self._conn.drain()
        except TimeoutError:
            self.lost = True
            self._conn.abort()
            raise ClientDisconnected() from None

    async def end_response(self) -> None:
        if self.lost:
            return
        if self._framing == Framing.LENGTH and self._left:
            return  # shorter than declared: left unfinished, the connection is closed
        held, self._held = self._held, b""
        end = CHUNKED_END if self._framing == Framing.CHUNKED else b""
        if held or end:
            self._conn.write(held + end)
        self._finish()

    def _start(self, status: int, headers: Headers | RawHeaders) -> bytes | None:
        """The response head to write (None once the client is gone)."""
        if self.lost:
            return None
        if not self.body_complete:
            # The rest of the body will not be read: the connection cannot be reused.
            self.keep_alive = False
        head = response_head(
            status,
            headers,
            self._conn.default_headers(),
            head_request=self.head_request,
            keep_alive=self.keep_alive and self._conn.keeps_alive,
            http10=self.http10,
        )
        self.response_started = True
        self.expect_continue = False
        self.closes = head.closes
        self._framing = head.framing
        self._left = head.length
        return head.data

    def _finish(self) -> None:
        self.response_complete = True
        self._conn.response_done(self)

    # --- Exchange: the relay ---------------------------------------------------------

    async def run_relay(
        self,
        relay: Coroutine[Any, Any, None],
        record: CallRecord,
        body_done: asyncio.Event,
    ) -> None:
        if self.lost and body_done.is_set():
            relay.close()
            record.client_gone()
            return
        task = asyncio.current_task(self._conn.loop)  # with the loop: no lookup of it
        assert task is not None
        self._relay_task, self._relay_record, self._relay_done = task, record, body_done
        try:
            await relay
        finally:
            self._relay_task = self._relay_record = self._relay_done = None

    @property
    def client_left(self) -> bool:
        return self._relay_cancelled
