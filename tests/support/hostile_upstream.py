"""A hostile upstream that records every raw request head it gets and answers as told.

The fake fal decodes what it receives (so it cannot show the bytes on the wire) and
never redirects a WebSocket. This raw asyncio server keeps each request head exactly as
received, counts every TCP connection (so a test can prove a server was never
contacted), and answers with one of the ``Answer`` functions below: a 302 elsewhere, an
accepted WebSocket handshake, or a small JSON 200. It plays fal and receives the test
key: it never logs anything. Runs in a thread with its own loop on a free loopback port.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from falproxy import FalCredential, ProxyConfig
from tests.conftest import TEST_KEY
from tests.support.raw_server import serve_in_thread

# head -> (response bytes, whether to keep the connection until the peer sends or leaves)
Answer = Callable[[bytes], tuple[bytes, bool]]
# RFC 6455 1.3: the GUID the server appends to Sec-WebSocket-Key.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_JSON_OK = b'{"ok": true}'
_MAX_HEAD = 64 * 1024


def redirect(location: str, status: str = "302 Found") -> Answer:
    """Answer every request with ``status`` and ``Location: location``."""

    def answer(head: bytes) -> tuple[bytes, bool]:
        body = b'{"detail": "moved"}'
        lines = (
            f"HTTP/1.1 {status}\r\nlocation: {location}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        return lines.encode() + body, False

    return answer


def accept_websocket(head: bytes) -> tuple[bytes, bool]:
    """A valid 101 for a WebSocket handshake; the socket then stays open, silent, and
    drops as soon as the proxy sends anything (so a closing relay never waits for it)."""
    key = header_value(head, b"sec-websocket-key") or b""
    accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + accept + b"\r\n\r\n"
    )
    return response, True


def json_ok(head: bytes) -> tuple[bytes, bool]:
    """``200 {"ok": true}``, connection closed after it."""
    head_text = (
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        f"content-length: {len(_JSON_OK)}\r\nconnection: close\r\n\r\n"
    )
    return head_text.encode() + _JSON_OK, False


def header_value(head: bytes, name: bytes) -> bytes | None:
    """The raw value of header ``name`` (lower-case) in a request head, else None."""
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip(b" \t")
    return None


class RecordingUpstream:
    """Counts connections and keeps raw request heads; read from the test thread."""

    def __init__(self, answer: Answer = json_ok) -> None:
        self.answer = answer
        self.url = ""
        self.port = 0
        self.connections = 0
        self.heads: list[bytes] = []

    def paths(self) -> list[str]:
        return [head.split(b" ", 2)[1].decode("latin-1") for head in self.heads]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            length = header_value(head, b"content-length")
            if length is not None:
                await reader.readexactly(int(length))
            response, hold = self.answer(head)
            writer.write(response)
            await writer.drain()
            if hold:  # until the proxy sends anything (a frame, its close) or leaves
                await reader.read(1)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:  # server shutdown
            return
        finally:
            with suppress(Exception):
                writer.close()

    @contextmanager
    def running(self) -> Iterator[RecordingUpstream]:
        with serve_in_thread(self._handle, limit=_MAX_HEAD) as port:
            self.port = port
            self.url = f"http://127.0.0.1:{port}"
            yield self


def config_for(upstream: RecordingUpstream) -> ProxyConfig:
    """The test key, and ``fal.run`` sent to ``upstream``."""
    return ProxyConfig(credential=FalCredential(TEST_KEY), upstreams={"fal.run": upstream.url})
