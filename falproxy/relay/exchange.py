"""What a front end gives the relay for one HTTP call: its only I/O.

The ASGI app implements it with ``receive``/``send`` messages; the native server protocol
with its parser and transport. Everything else about the call (admission, body plan,
upstream call, event) is the front-end-neutral code of :mod:`falproxy.relay.call`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
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
        """Run ``relay`` to its end, cancelling it if the client leaves once ``body_done``
        is set (the client is then recorded as gone)."""
        ...


async def await_relay(
    relay: Coroutine[Any, Any, None], task: asyncio.Task[Any], client_left: Callable[[], bool]
) -> None:
    """Await ``relay`` in ``task``; a cancellation because the client left ends it quietly.

    Both front ends cancel the relay's task when the client goes (``client_left`` then
    says so); any other cancellation (shutdown, a timeout) propagates.
    """
    try:
        await relay
    except asyncio.CancelledError:
        if not client_left():
            raise
        task.uncancel()  # the client left: the relay ends quietly, outcome client_gone
