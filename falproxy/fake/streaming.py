"""Streaming responses whose open/closed/disconnected counts are exact.

Starlette's ``StreamingResponse`` stops a generator on disconnect by cancelling the task that
iterates it, which can leave the generator suspended at a ``yield`` and finalised later by the
garbage collector. This response watches ``http.disconnect`` in a side task, stops its own
loop when the client leaves and always closes the generator before counting the stream as
ended, so
``/__fake__/stats`` is right the moment a proxy tears a stream down. Each chunk is sent as one
ASGI body message, which keeps every SSE event in one write.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .stats import Stats

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def sse_event(data: object) -> bytes:
    """One server-sent event carrying compact JSON."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def sse_comment(text: str) -> bytes:
    """An SSE comment line, used as keep-alive."""
    return f": {text}\n\n".encode()


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone; request body messages are drained and ignored."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def sleep_unless_gone(request: Request, seconds: float) -> bool:
    """Sleep, cutting the sleep short when the client leaves; ``True`` if it left.

    The request body must already be read (or absent): this consumes ``receive``.
    """
    with anyio.move_on_after(seconds):
        await wait_for_disconnect(request.receive)
        return True
    return False


@dataclass
class _Progress:
    """How far a stream got: body complete, client gone."""

    complete: bool = False
    gone: bool = False


class TrackedStream(Response):
    """A response that streams ``chunks`` and reports its lifetime to :class:`Stats`."""

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        stats: Stats,
        *,
        media_type: str,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.chunks = chunks
        self.stats = stats
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.stream_opened()
        gone = False
        try:
            gone = await self._stream(receive, send)
        finally:
            await self.chunks.aclose()
            self.stats.stream_closed(disconnected=gone)

    async def _stream(self, receive: Receive, send: Send) -> bool:
        """Pump chunks until the end or until the client leaves; ``True`` if it left first.

        Servers also report ``http.disconnect`` once a response is complete, so the watcher
        only counts a departure while the body is still incomplete.
        """
        state = _Progress()
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await wait_for_disconnect(receive)
                if not state.complete:
                    state.gone = True
                    group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await self._pump(send, state)
            except OSError:  # ASGI spec >= 2.4 servers report a gone client this way
                state.gone = True
            group.cancel_scope.cancel()
        return state.gone

    async def _pump(self, send: Send, state: _Progress) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        async for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        state.complete = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
