"""What hypercorn and granian bound before the proxy sees a request (docs/integrations.md).

``falproxy serve`` caps the request head's size and time itself; under another ASGI server
the head is the server's to bound. Each server here serves the FastAPI example with its
documented command (tests/support/examples_server.py), and the table in
docs/integrations.md ("Request heads are your server's to bound") is held to what it does.
"""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from tests.support.examples_server import Running, start_server
from tests.support.live import parse_response

HEALTH = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n"
# hypercorn reads at most 64 KiB at a time; a head past that is past h11's 16 KiB limit.
HYPERCORN_REFUSED_HEAD = 100 * 1024
HYPERCORN_KEEP_ALIVE = 5.0  # hypercorn's --keep-alive default
GRANIAN_BUFFER = 417_792  # granian's --http1-buffer-size default
# How far past the buffer a head is always refused: one just past it may be parsed before
# the buffer fills, depending on how the bytes arrive.
GRANIAN_REFUSED_HEAD = 1024 * 1024
SLACK = 3.0


def send(server: Running, data: bytes, timeout: float) -> tuple[bytes, float]:
    """Send ``data`` and read until the server answers or closes; (answer, seconds)."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        # Refused before the head was all sent: the answer may still be there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(data)
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except ConnectionResetError:
            pass
    return answer, time.monotonic() - started


def big_head(size: int) -> bytes:
    return HEALTH + b"x-big: " + b"a" * size + b"\r\n\r\n"


def test_hypercorn_refuses_a_large_head_and_closes_an_unfinished_one(fake_url: str) -> None:
    with start_server("fastapi-hypercorn", fake_url, ready_path="/healthz") as server:
        assert parse_response(send(server, big_head(8 * 1024), 10)[0])[0] == 200
        assert parse_response(send(server, big_head(HYPERCORN_REFUSED_HEAD), 10)[0])[0] == 431
        answer, seconds = send(server, HEALTH, HYPERCORN_KEEP_ALIVE + 10)
    assert answer == b""
    assert HYPERCORN_KEEP_ALIVE - 1 < seconds < HYPERCORN_KEEP_ALIVE + SLACK


@pytest.mark.parametrize("timeout_ms", [1500])
def test_granian_refuses_a_head_past_its_buffer_and_times_out_a_slow_one(
    fake_url: str, timeout_ms: int
) -> None:
    """The documented setting, set low here through its variable so the test is short."""
    with start_server(
        "fastapi-granian",
        fake_url,
        ready_path="/healthz",
        GRANIAN_HTTP1_HEADER_READ_TIMEOUT=str(timeout_ms),
    ) as server:
        # Past 64 KiB (falproxy serve's cap), still inside granian's buffer: served.
        assert parse_response(send(server, big_head(100 * 1024), 10)[0])[0] == 200
        assert parse_response(send(server, big_head(GRANIAN_REFUSED_HEAD), 10)[0])[0] == 431
        answer, seconds = send(server, HEALTH, timeout_ms / 1000 + 10)
    assert b" 200 " not in answer
    assert timeout_ms / 1000 - 0.5 < seconds < timeout_ms / 1000 + SLACK
