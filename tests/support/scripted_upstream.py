"""A raw HTTP/1.1 upstream whose answers a test writes by hand, recording every byte sent.

For the lean upstream client's own tests (tests/live/test_lean_client.py): the server
reads each request (head, then a Content-Length or chunked body) off a kept-alive
connection, records its exact bytes and which connection carried it, and lets the test's
``answer`` write whatever bytes it likes, well-formed or not.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from tests.support.raw_server import serve_in_thread

MAX_TEST_BODY = 64 * 1024 * 1024


@dataclass
class Received:
    connection: int  # 1 for the first connection accepted, 2 for the next...
    head: bytes  # request line and headers, with the final CRLF CRLF
    body: bytes  # the body exactly as framed on the wire (chunk sizes included)

    @property
    def path(self) -> bytes:
        return self.head.split(b" ", 2)[1]


# Writes the answer to one request; returns False to close the connection afterwards.
Answer = Callable[[Received, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class ScriptedUpstream:
    answer: Answer
    port: int = 0
    connections: int = 0
    open_connections: int = 0
    raw_bytes: int = 0  # every byte any client sent, parsed or not
    requests: list[Received] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
                    if isinstance(exc, asyncio.IncompleteReadError):
                        self.raw_bytes += len(exc.partial)
                    return
                self.raw_bytes += len(head)
                try:
                    body = await _read_body(reader, head)
                except asyncio.IncompleteReadError:
                    return  # the client gave up mid-body
                self.raw_bytes += len(body)
                received = Received(number, head, body)
                self.requests.append(received)
                keep = await self.answer(received, writer)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            with suppress(Exception):
                writer.close()
                await writer.wait_closed()  # the socket is closed before the count drops
            self.open_connections -= 1


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lowered = head.lower()
    if b"\r\ntransfer-encoding: chunked\r\n" in lowered:
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            body += size_line + await reader.readexactly(size + 2)
            if len(body) > MAX_TEST_BODY:
                raise ConnectionError("test body too large")
            if size == 0:
                return bytes(body)
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":", 1)[1]))
    return b""


@contextmanager
def scripted_upstream(
    answer: Answer, *, tls: ssl.SSLContext | None = None
) -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream(answer)
    with serve_in_thread(upstream.handle, tls=tls) as port:
        upstream.port = port
        yield upstream


def response(status: str, body: bytes = b"", *headers: str, length: bool = True) -> bytes:
    """A response's bytes: ``length`` adds Content-Length (else the test frames it)."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*parts: bytes, end: bool = True) -> bytes:
    """Chunked-framed ``parts``, with the last chunk unless ``end`` is false."""
    framed = b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts)
    return framed + (b"0\r\n\r\n" if end else b"")
