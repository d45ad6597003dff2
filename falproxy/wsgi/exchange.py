"""One WSGI request as the relay's :class:`~falproxy.relay.exchange.Exchange`, on the loop.

This is the loop thread's half of a WSGI call: :func:`falproxy.relay.call.serve_route`
runs against it exactly as against the ASGI and native exchanges, and every I/O it asks
for goes through the call's :class:`~falproxy.wsgi.handoff.Handoff` to the WSGI thread,
which reads the body and writes the response (:mod:`falproxy.wsgi.call`). The WSGI thread
reports a client that left by calling :meth:`WsgiExchange.leave` on the loop. A client that
stays connected but stops reading blocks the WSGI thread's write, so the window stays
full: after ``send_timeout`` (the stream idle timeout) the call ends as the client's
departure and the relay and its upstream connection are released, as on the ASGI path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from falproxy.core.answers import Answer
from falproxy.core.body import BodyClock
from falproxy.core.errors import ClientDisconnected
from falproxy.core.headers import Headers
from falproxy.core.lifecycle import CallRecord
from falproxy.core.types import Scope
from falproxy.wsgi.handoff import END, Handoff, Start


class WsgiExchange:
    """The relay's view of a WSGI request: I/O handed to the request's thread."""

    __slots__ = ("_handoff", "_left", "_record", "_send_timeout", "_task", "scope")

    def __init__(self, scope: Scope, handoff: Handoff, send_timeout: float | None = None) -> None:
        self.scope = scope
        self._handoff = handoff
        self._send_timeout = send_timeout
        self._task: asyncio.Task[Any] | None = None  # set while the relay runs
        self._record: CallRecord | None = None
        self._left = False

    async def body_chunks(self, max_bytes: int, clock: BodyClock) -> AsyncIterator[bytes]:
        while chunk := await self._handoff.read(max_bytes, clock):
            yield chunk

    async def answer(self, answer: Answer) -> None:
        self._handoff.post(answer)

    async def start_response(self, status: int, headers: Headers) -> None:
        self._handoff.post(Start(status, headers))

    async def send_body(self, chunk: bytes) -> None:
        try:
            await self._handoff.send(chunk, self._send_timeout)
        except TimeoutError:
            raise ClientDisconnected() from None

    async def end_response(self) -> None:
        self._handoff.post(END)

    async def run_relay(
        self,
        relay: Coroutine[Any, Any, None],
        record: CallRecord,
        body_done: asyncio.Event,
    ) -> None:
        """Run ``relay`` in this task; :meth:`leave` cancels it while it runs."""
        del body_done  # the WSGI thread can only leave once it has the response head
        task = asyncio.current_task()
        assert task is not None
        self._task, self._record = task, record
        try:
            await relay
        finally:
            self._task = None

    @property
    def client_left(self) -> bool:
        return self._left

    def leave(self) -> None:
        """On the loop: the WSGI server closed the response before its end (client gone).

        Cancels the relay, which closes the upstream response, unless it is already past
        its last chunk; a relay that has returned is left alone.
        """
        task, record = self._task, self._record
        if task is None or record is None or record.complete:
            return
        self._left = True
        record.client_gone()
        task.cancel()
