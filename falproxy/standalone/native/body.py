"""A native request's body as the relay reads it: an async generator over its exchange.

Kept apart from :mod:`falproxy.standalone.native.exchange` because mypyc compiles no async
generator (setup.py): the exchange, compiled, hands out the bytes and does the waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from falproxy.core.body import BodyClock
from falproxy.core.errors import PayloadTooLarge

if TYPE_CHECKING:
    from falproxy.standalone.native.exchange import NativeExchange


async def body_chunks(
    exchange: NativeExchange, max_bytes: int, clock: BodyClock
) -> AsyncIterator[bytes]:
    """The body as it arrives; 413 past ``max_bytes``, 408 (from the exchange) past ``clock``."""
    received = 0
    while (data := exchange.take_body()) is not None:
        if not data:
            await exchange.wait_for_body(clock)
            continue
        received += len(data)
        if received > max_bytes:
            raise PayloadTooLarge()
        yield data
