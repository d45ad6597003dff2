"""Request bodies: what a declared body may be, and streaming one from ASGI with a cap.

Bodies are never read whole (except the small token-minting one): they are relayed as
they arrive, and counted so that a body without a ``Content-Length`` still stops at the
cap. The framing rules are pure so that the WSGI adapters share them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from falproxy.core.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from falproxy.core.types import Message, Receive


class ClientDisconnected(Exception):
    """The client went away while we were reading or relaying."""


@dataclass(frozen=True, slots=True)
class DeclaredBody:
    """What the request's headers say about its body."""

    length: int | None  # the validated Content-Length, or None when chunked
    present: bool  # whether any body bytes may follow


def declared_body(headers: Iterable[tuple[bytes, bytes]], max_bytes: int) -> DeclaredBody:
    """Validate framing and type of the request body before anything is forwarded.

    Raises 400 for ambiguous framing (RFC 9112 section 6.3: both length and chunked, or
    several lengths), 413 for a declared length over the cap, 415 for a non-JSON body.
    """
    headers = list(headers)
    lengths = [value for name, value in headers if name == b"content-length"]
    codings = [value for name, value in headers if name == b"transfer-encoding"]
    chunked = bool(codings)
    if len(lengths) > 1 or (lengths and chunked):
        raise BadRequest("Ambiguous request body framing")
    if codings and b",".join(codings).strip().lower() != b"chunked":
        # The server removed only the chunking: a gzip (or unknown) coding would reach fal
        # as undeclared bytes. fal's clients send plain JSON; nothing else is relayed.
        raise BadRequest("Unsupported Transfer-Encoding (only chunked is accepted)")
    length = _parse_length(lengths[0]) if lengths else None
    if length is not None and length > max_bytes:
        raise PayloadTooLarge()
    present = chunked or bool(length)
    if present and not is_json_content_type(headers):
        raise UnsupportedMediaType()
    return DeclaredBody(length=length if not chunked else None, present=present)


def _parse_length(raw: bytes) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("Invalid Content-Length")
    return int(raw)


def is_json_content_type(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """``application/json`` (any parameters, any case), or a ``+json`` type."""
    for name, value in headers:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or (
                media_type.startswith(b"application/") and media_type.endswith(b"+json")
            )
    return False


async def stream_body(
    receive: Receive, max_bytes: int, read_timeout: float | None = None
) -> AsyncIterator[bytes]:
    """Yield the request body as it arrives; 413 past ``max_bytes``.

    ``read_timeout`` bounds each wait for the next chunk (408 after it): a client dripping
    a body byte by byte would otherwise hold an upstream connection open indefinitely.
    """
    received = 0
    while True:
        message = await _receive_within(receive, read_timeout)
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


async def _receive_within(receive: Receive, seconds: float | None) -> Message:
    if seconds is None:
        return await receive()
    try:
        async with asyncio.timeout(seconds):  # cheaper per chunk than an anyio cancel scope
            return await receive()
    except TimeoutError:
        raise RequestTimeout() from None


async def read_body(receive: Receive, max_bytes: int, read_timeout: float | None = None) -> bytes:
    """The whole body, for the few small bodies the proxy must inspect."""
    chunks = stream_body(receive, max_bytes, read_timeout)
    return b"".join([chunk async for chunk in chunks])
