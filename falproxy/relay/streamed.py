"""A large request body streamed upstream: its prefetched start, then the rest as it comes.

An async generator, kept out of the compiled :mod:`falproxy.relay.body` (mypyc compiles
no async generator; setup.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from falproxy.core.lifecycle import CallRecord


async def streamed(
    first: bytes, chunks: AsyncIterator[bytes], done: asyncio.Event, record: CallRecord
) -> AsyncIterator[bytes]:
    """Relay the body, counting it, and signal its end to the disconnect watcher."""
    yield first
    async for chunk in chunks:
        record.bytes_up += len(chunk)
        yield chunk
    done.set()
