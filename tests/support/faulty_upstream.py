"""A deliberately broken upstream: a raw asyncio HTTP/1.1 server whose faults are chosen by path.

The fake fal is a well-behaved Starlette app; it cannot send malformed HTTP, reset a
connection mid-body or lie about framing. This server writes bytes by hand so the proxy can
be tested against every way an upstream breaks. It runs in a thread with its own event loop
on a free 127.0.0.1 port, and counts the connections it holds open, so tests can prove the
proxy closes its side whatever happened.

The first path segment picks the fault: ``/ok/...``, ``/reset-before-headers/...`` and so
on (see ``FAULTS``). The proxy reaches it as ``https://fal.run/<fault>/...`` with the
upstream of ``fal.run`` mapped here.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress

from tests.support.raw_server import serve_in_thread

OK_BODY = b'{"ok": true}'
# Past httpcore's 100 KiB limit on an incomplete HTTP event: headers that large are refused.
OVERSIZED_HEADER_BYTES = 256 * 1024
CHUNK = b"data: " + b"x" * 1018 + b"\n\n"  # 1 KiB per event of the never-ending stream


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _head(status: str = "200 OK", *extra: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", "content-type: application/json", *extra]
    lines.append(
        f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


Fault = Callable[[asyncio.StreamWriter], Awaitable[None]]


async def _ok(writer: asyncio.StreamWriter) -> None:
    writer.write(_head(length=len(OK_BODY)) + OK_BODY)


async def _reset_before_headers(writer: asyncio.StreamWriter) -> None:
    _reset(writer)


async def _close_before_headers(writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _reset_mid_body(writer: asyncio.StreamWriter) -> None:
    writer.write(_head(length=10_000) + b"x" * 1000)
    await writer.drain()
    await asyncio.sleep(0.2)
    _reset(writer)


async def _short_body(writer: asyncio.StreamWriter) -> None:
    writer.write(_head(length=10_000) + b"x" * 1000)
    await writer.drain()
    writer.close()


async def _stall_before_headers(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def _stall_mid_stream(writer: asyncio.StreamWriter) -> None:
    writer.write(_head() + _chunk(CHUNK))
    await writer.drain()
    await asyncio.sleep(3600)


async def _malformed(writer: asyncio.StreamWriter) -> None:
    writer.write(b"SPDY/9 banana\r\n\x00\x01\x02 not http at all\r\n\r\n")


async def _bad_chunk(writer: asyncio.StreamWriter) -> None:
    # The garbage comes after a pause, so the head and first chunk are relayed before it:
    # a fault in the middle of the body, not one a client library sees with the head.
    writer.write(_head() + _chunk(b"{}"))
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.write(b"zz-not-hex\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()


async def _oversized_headers(writer: asyncio.StreamWriter) -> None:
    writer.write(_head("200 OK", "x-huge: " + "a" * OVERSIZED_HEADER_BYTES, length=2) + b"{}")


async def _never_ending(writer: asyncio.StreamWriter) -> None:
    writer.write(_head())
    while True:  # ends when the proxy goes away: drain() raises on a closed connection
        writer.write(_chunk(CHUNK))
        await writer.drain()
        await asyncio.sleep(0)


def echo_authorization(head: bytes) -> bytes:
    """A response echoing the request's ``Authorization`` in headers, as careless upstreams do."""
    sent = next(
        (
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"authorization:")
        ),
        b"",
    )
    key = sent.partition(b" ")[2]
    extra = [
        "x-echo-authorization: " + sent.decode("latin-1"),
        "x-debug: called with key " + key.decode("latin-1") + " at 12:00",
        "x-fal-request-id: echo-1",
    ]
    return _head("200 OK", *extra, length=len(OK_BODY)) + OK_BODY


FAULTS: dict[str, Fault] = {
    "ok": _ok,
    "reset-before-headers": _reset_before_headers,
    "close-before-headers": _close_before_headers,
    "reset-mid-body": _reset_mid_body,
    "short-body": _short_body,
    "stall-before-headers": _stall_before_headers,
    "stall-mid-stream": _stall_mid_stream,
    "malformed": _malformed,
    "bad-chunk": _bad_chunk,
    "oversized-headers": _oversized_headers,
    "never-ending": _never_ending,
}


class FaultyUpstream:
    """The server's state, shared with the test thread: counters only, read without locks."""

    def __init__(self) -> None:
        self.url = ""
        self.open_connections = 0
        self.total_connections = 0
        self.requests: list[str] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.total_connections += 1
        try:
            while True:  # keep-alive: one request after another until a fault ends it
                head = await reader.readuntil(b"\r\n\r\n")
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
                self.requests.append(request_line)
                await _drain_request_body(reader, head)
                path = request_line.split(" ")[1]
                if path.startswith("/echo-authorization"):
                    writer.write(echo_authorization(head))
                    await writer.drain()
                    continue
                fault = FAULTS.get(path.lstrip("/").split("/", 1)[0], _ok)
                if fault is _ok:
                    await _ok(writer)
                    await writer.drain()
                    continue
                await _until_peer_closes(fault(writer), reader)
                return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:  # server shutdown; asyncio would log a cancelled handler
            return
        finally:
            self.open_connections -= 1
            with suppress(Exception):
                writer.close()

    @contextmanager
    def running(self) -> Iterator[FaultyUpstream]:
        with serve_in_thread(self._handle) as port:
            self.url = f"http://127.0.0.1:{port}"
            yield self


async def _until_peer_closes(fault: Awaitable[None], reader: asyncio.StreamReader) -> None:
    """Run a fault until it ends or the proxy closes its side (a stalled fault never ends)."""
    acting = asyncio.ensure_future(fault)
    watching = asyncio.ensure_future(reader.read())
    try:
        await asyncio.wait({acting, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (acting, watching):
            task.cancel()
        await asyncio.gather(acting, watching, return_exceptions=True)


async def _drain_request_body(reader: asyncio.StreamReader, head: bytes) -> None:
    """Read a Content-Length body (the proxy never sends chunked bodies to these tests)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value.strip()))


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed): connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
