"""The WSGI adapter drives the shared relay on its loop thread (falproxy/wsgi/).

Real sockets: a raw upstream that counts what it manages to write, and ``SyncFalProxy``
called the way a WSGI server calls it (``call``, then iterate and close the body). The
body is read in the WSGI thread; the relayed response crosses to it through a bounded
window, so a client that stops reading stops the upstream too, and closing the body
ends the upstream call.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any

import pytest

from falproxy import FalCredential, ProxyConfig, UpstreamUnavailable
from falproxy.wsgi.proxy import SyncFalProxy
from tests.support.live import wait_until
from tests.support.scripted_upstream import Received, scripted_upstream

KEY = "wsgi-key-id:wsgi-key-secret"
TARGET = [(b"x-fal-target-url", b"https://fal.run/fal-ai/flux/dev")]
BIG = 64 * 1024 * 1024
PIECE = 256 * 1024
# Kernel socket buffers on loopback (both ends) hold a few MiB whatever the proxy does;
# past this, the proxy itself would be buffering (its window is 256 KiB).
HELD_AT_MOST = 16 * 1024 * 1024


class Writer:
    """An upstream answering one large body, counting the bytes it got to write."""

    def __init__(self) -> None:
        self.written = 0

    async def __call__(self, received: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n".encode())
        piece = b"x" * PIECE
        while self.written < BIG:
            writer.write(piece)
            await writer.drain()
            self.written += PIECE
        return False


def proxy_for(port: int, idle_timeout: float = 30.0) -> SyncFalProxy:
    return SyncFalProxy(
        ProxyConfig(
            credential=FalCredential(KEY),
            upstreams={"fal.run": f"http://127.0.0.1:{port}"},
            stream_idle_timeout=idle_timeout,
        )
    )


def test_a_client_that_stops_reading_holds_the_upstream_back_and_closing_ends_it() -> None:
    upstream_writer = Writer()
    with scripted_upstream(upstream_writer) as upstream:
        proxy = proxy_for(upstream.port)
        try:
            reply = proxy.call("GET", TARGET, io.BytesIO())
            assert reply.status == 200
            chunks = iter(reply.body)
            next(chunks)
            time.sleep(1.0)  # the client reads nothing more: the relay must wait
            held = upstream_writer.written
            assert held < HELD_AT_MOST, held
            time.sleep(0.5)
            assert upstream_writer.written == held  # stalled, not trickling
            read = sum(len(next(chunks)) for _ in range(20))  # reading resumes the flow
            assert read > 0
            reply.body.close()  # type: ignore[attr-defined]  # the client left mid-stream
            wait_until(lambda: upstream.open_connections == 0, timeout=5)
            assert upstream_writer.written < BIG
        finally:
            proxy.close()


def test_a_client_that_stops_reading_for_the_idle_timeout_releases_the_upstream(
    no_key_in_logs: Any,
) -> None:
    """The WSGI thread is stuck writing to a client that reads nothing: past the stream
    idle timeout the relay ends as the client's departure, and the upstream is closed."""
    upstream_writer = Writer()
    with scripted_upstream(upstream_writer) as upstream:
        proxy = proxy_for(upstream.port, idle_timeout=1.0)
        try:
            reply = proxy.call("GET", TARGET, io.BytesIO())
            chunks = iter(reply.body)
            next(chunks)  # then the client stops reading, and never closes
            wait_until(lambda: upstream.open_connections == 0, timeout=6)
            access = [line for line in no_key_in_logs.lines if "outcome=" in line]
            assert len(access) == 1 and "outcome=client_gone" in access[0]
            with pytest.raises(UpstreamUnavailable):  # the server aborts: truncated
                while True:
                    next(chunks)
            reply.body.close()  # type: ignore[attr-defined]
        finally:
            proxy.close()


def test_the_body_is_read_in_the_wsgi_thread() -> None:
    """Socket timeouts bound a WSGI read only on the thread that reads it."""
    readers: list[str] = []

    class Input(io.BytesIO):
        def read(self, size: Any = -1, /) -> bytes:
            readers.append(threading.current_thread().name)
            return super().read(size)

    async def echo_length(received: Received, writer: asyncio.StreamWriter) -> bool:
        body = str(len(received.body)).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))
        return True

    with scripted_upstream(echo_length) as upstream:
        proxy = proxy_for(upstream.port)
        try:
            raw = b"[" + b"1," * 50_000 + b"1]"
            headers = [
                *TARGET,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ]
            reply = proxy.call("POST", headers, Input(raw))
            assert (reply.status, b"".join(reply.body)) == (200, str(len(raw)).encode())
            reply.body.close()  # type: ignore[attr-defined]
        finally:
            proxy.close()
    assert set(readers) == {threading.current_thread().name}
