"""What a front end gives the relay for one HTTP call: its only I/O.

The ASGI app implements it with ``receive``/``send`` messages; the native server protocol
with its parser and transport. Everything else about the call (admission, body plan,
upstream call, event) is the front-end-neutral code of :mod:`falproxy.relay.call`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, Protocol

from falproxy.core.answers import Answer
from falproxy.core.body import BodyClock
from falproxy.core.headers import Headers
from falproxy.core.lifecycle import CallRecord
from falproxy.core.types import Scope


class ResponseSink(Protocol):
    """Where a relayed response goes, in order: one start, body chunks, one end.

    A response that is never ended (the upstream broke off) must reach the client as a
    truncated one: the front end aborts the connection instead of finishing it.
    """

    async def start_response(self, status: int, headers: Headers) -> None: ...

    async def send_body(self, chunk: bytes) -> None: ...

    async def end_response(self) -> None: ...


class Exchange(ResponseSink, Protocol):
    """One HTTP request as a front end received it, and the ways to answer it."""

    @property
    def scope(self) -> Scope:
        """An ASGI-shaped scope (method, headers, path, client): what admission reads."""
        ...

    def body_chunks(self, max_bytes: int, clock: BodyClock) -> AsyncIterator[bytes]:
        """The request body as it arrives: 413 past ``max_bytes``, 408 past ``clock``,
        ``ClientDisconnected`` if the client leaves mid-body."""
        ...

    async def answer(self, answer: Answer) -> None:
        """Write a whole response the proxy made itself (refusal, reply, preflight)."""
        ...

    async def run_relay(
        self,
        relay: Coroutine[Any, Any, None],
        record: CallRecord,
        body_done: asyncio.Event,
    ) -> None:
        """Run ``relay`` to its end; if the client leaves once ``body_done`` is set, record
        it as gone, set :attr:`client_left` and cancel the task serving the call (which
        :func:`serve_call` then ends quietly)."""
        ...

    @property
    def client_left(self) -> bool:
        """Whether this front end cancelled the call because its client left."""
        ...


async def serve_call(call: Awaitable[None], exchange: Exchange) -> None:
    """Await a call at its front end's entry; a cancellation because the client left ends
    it quietly, any other cancellation (shutdown, a timeout) propagates.

    A front end cancels the task serving a call when the client leaves mid-relay
    (:meth:`Exchange.run_relay`). The ``CancelledError`` then unwinds the whole call, so
    every ``finally`` runs (the upstream response closed, a budget hold released, the
    call's event), and ends here, above every frame of the call. It must not be caught
    lower: a compiled coroutine (setup.py) that awaits an interpreted one which swallows a
    cancellation raises the swallowed ``CancelledError`` again.
    """
    try:
        await call
    except asyncio.CancelledError:
        if not exchange.client_left:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the client left: the call ends quietly, outcome client_gone
