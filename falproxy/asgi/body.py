"""Reading an ASGI request body: chunk by chunk, capped, within its timeouts.

The per-chunk timeout stops a client that pauses; the whole-body deadline stops one that
drips just under it. Either way the call ends with 408 and the upstream call, which is
reading this very iterator, is cancelled with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from falproxy.core.body import DEADLINE_DETAIL, BodyClock
from falproxy.core.errors import ClientDisconnected, PayloadTooLarge, RequestTimeout
from falproxy.core.types import Message, Receive


async def stream_body(
    receive: Receive, max_bytes: int, clock: BodyClock | None = None
) -> AsyncIterator[bytes]:
    """Yield the request body as it arrives; 413 past ``max_bytes``, 408 past ``clock``."""
    received = 0
    while True:
        message = await _receive_within(receive, clock)
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLarge()
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _receive_within(receive: Receive, clock: BodyClock | None) -> Message:
    if clock is None:
        return await receive()
    seconds = clock.next_wait(time.monotonic())
    if seconds <= 0:
        raise RequestTimeout(DEADLINE_DETAIL)
    try:
        async with asyncio.timeout(seconds):  # cheaper per chunk than an anyio cancel scope
            return await receive()
    except TimeoutError:
        raise RequestTimeout(clock.timeout_detail(seconds)) from None
