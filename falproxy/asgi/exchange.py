"""One ASGI HTTP request as a :class:`~falproxy.relay.exchange.Exchange`.

The body comes from ``receive`` messages and the response goes out as ``send`` messages.
ASGI reports a client that leaves only through ``receive``, so while a response is
relayed a watcher task reads it and cancels the relay on ``http.disconnect``. A client
that stays connected but stops reading blocks ``send`` in the server's flow control: after
``send_timeout`` (the stream idle timeout) the call ends as the client's departure, so the
relay and its upstream connection are released.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from falproxy.asgi.body import stream_body
from falproxy.asgi.responses import send_answer
from falproxy.core.answers import Answer
from falproxy.core.body import BodyClock
from falproxy.core.errors import ClientDisconnected
from falproxy.core.headers import Headers
from falproxy.core.lifecycle import CallRecord
from falproxy.core.types import Receive, Scope, Send


class AsgiExchange:
    """An ASGI request: ``scope``, ``receive`` and ``send``, as the relay wants them."""

    __slots__ = ("_receive", "_send", "_send_timeout", "_watch", "scope")

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, send_timeout: float | None = None
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._send_timeout = send_timeout
        self._watch: _Watch | None = None  # while the relay runs

    def body_chunks(self, max_bytes: int, clock: BodyClock) -> AsyncIterator[bytes]:
        return stream_body(self._receive, max_bytes, clock)

    async def answer(self, answer: Answer) -> None:
        await send_answer(self._send, answer)

    async def start_response(self, status: int, headers: Headers) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def send_body(self, chunk: bytes) -> None:
        message = {"type": "http.response.body", "body": chunk, "more_body": True}
        if self._send_timeout is None:
            await self._send(message)
            return
        try:
            async with asyncio.timeout(self._send_timeout):
                await self._send(message)
        except TimeoutError:
            raise ClientDisconnected() from None

    async def end_response(self) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def run_relay(
        self,
        relay: Coroutine[Any, Any, None],
        record: CallRecord,
        body_done: asyncio.Event,
    ) -> None:
        """Run ``relay`` in this task while a watcher waits for the client's disconnect.

        Plain asyncio (a task and ``Task.cancel``) rather than an anyio task group: the
        group's cancel scopes cost a fifth of a status poll.
        """
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(task)
        self._watch = watch
        watcher = asyncio.get_running_loop().create_task(
            _watch_disconnect(self._receive, body_done, watch, record)
        )
        try:
            await relay
        finally:
            watch.finished = True
            watcher.cancel()

    @property
    def client_left(self) -> bool:
        return self._watch is not None and self._watch.cancelled


class _Watch:
    """Shared by a relay and its disconnect watcher (same event loop, no locking needed)."""

    __slots__ = ("cancelled", "finished", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.finished = False  # the relay is past its last await: cancelling it is too late
        self.cancelled = False  # the watcher cancelled the relay because the client left


async def _watch_disconnect(
    receive: Receive, body_done: asyncio.Event, watch: _Watch, record: CallRecord
) -> None:
    """Cancel the relay when the client goes away after sending its body."""
    if not body_done.is_set():
        await body_done.wait()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # servers also report a disconnect after a full response
            if not record.complete and not watch.finished:
                record.client_gone()
                watch.cancelled = True
                watch.task.cancel()
            return
