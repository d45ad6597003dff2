"""The request body to send upstream, from a front end's chunks and the call's body plan.

Small bodies are read whole before fal is called (:data:`PREFETCH_BYTES`): one that ends,
stalls or overflows within it is refused or sent whole, never forwarded short. Larger
bodies stream: the rest follows chunk by chunk, counted, and a body that fails midway
aborts the upstream call (:func:`falproxy.relay.streamed.streamed`, an async generator,
kept apart because mypyc compiles this module but no async generator).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

# Read this much before calling fal (see the module docstring).
PREFETCH_BYTES = 64 * 1024

Body = AsyncIterator[bytes] | bytes | None


@dataclass(frozen=True, slots=True)
class Prefetched:
    data: bytes  # what was read
    ended: bool  # the body ended within it


async def prefetch(chunks: AsyncIterator[bytes]) -> Prefetched:
    """Read up to :data:`PREFETCH_BYTES` of ``chunks`` (errors are raised here, before fal)."""
    head: list[bytes] = []
    size = 0
    async for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size >= PREFETCH_BYTES:
            return Prefetched(b"".join(head), ended=False)
    return Prefetched(b"".join(head), ended=True)


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    """The whole body, for the few small bodies the proxy must inspect (token minting)."""
    return b"".join([chunk async for chunk in chunks])
