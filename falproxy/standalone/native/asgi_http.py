"""An ASGI app's HTTP request served on a native connection: the fake fal beside the proxy.

In fake mode ``/_fake/...`` belongs to the fake fal, a Starlette app. Its requests are
parsed by the same llhttp front end as the proxy's (no second parser ever reads a
client's bytes) and handed to the app as ASGI messages over the request's
:class:`~falproxy.standalone.native.exchange.NativeExchange`: the body as
``http.request`` messages (capped and timed like a proxied body), the response back
through the exchange's writer. Only HTTP: the fake's own WebSocket endpoint is served by
the native WebSocket front end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Final

from falproxy.core.answers import Answer
from falproxy.core.body import BodyClock
from falproxy.core.types import ASGIApp, Message
from falproxy.standalone.native.exchange import NativeExchange

# The fake's largest request (an upload to its CDN) and how long a body may pause or take.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
BODY_TIMEOUT: Final = 30.0
BODY_DEADLINE: Final = 300.0


async def serve_asgi_http(app: ASGIApp, exchange: NativeExchange) -> None:
    """Run ``app`` for the request of ``exchange`` until its response is written."""
    clock = BodyClock(BODY_TIMEOUT, BODY_DEADLINE, time.monotonic())
    chunks = exchange.body_chunks(MAX_BODY_BYTES, clock)
    receive = _Receive(chunks, exchange)
    send = _Send(exchange)
    await app(exchange.scope, receive, send)


class _Receive:
    """The body as ``http.request`` messages, then ``http.disconnect`` once the client left."""

    def __init__(self, chunks: AsyncIterator[bytes], exchange: NativeExchange) -> None:
        self._chunks = chunks
        self._exchange = exchange
        self._ended = False

    async def __call__(self) -> Message:
        if not self._ended:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self._exchange.wait_lost()
        return {"type": "http.disconnect"}


class _Send:
    """ASGI response messages into the exchange's writer (a whole body in one write)."""

    def __init__(self, exchange: NativeExchange) -> None:
        self._exchange = exchange
        self._status = 500
        self._headers: list[tuple[bytes, bytes]] = []
        self._started = False

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = message["status"]
            self._headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            return
        if kind != "http.response.body":
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        exchange = self._exchange
        if not self._started:
            self._started = True
            if not more:
                await exchange.answer(Answer(self._status, tuple(self._headers), body))
                return
            await exchange.start_response(self._status, self._headers)
        if body:
            await exchange.send_body(body)
        if not more:
            await exchange.end_response()
