"""Request heads are bounded in bytes and in time (issue 12 item 2), over real sockets.

Both uvicorn HTTP implementations are covered through falproxy's guarded protocols
(``falproxy.standalone.protocols``), each served in-process with a 1 s header timeout; and
``falproxy serve`` itself, as a subprocess, with ``FALPROXY_HEADER_TIMEOUT=1``: an unfinished
head is cut off at 64 KiB instead of being buffered (memory stays flat with 4 clients sending
20 MB each), a dripped head is closed when its time is up, and normal calls keep being
served while 200 connections drip.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress

import httpx
import pytest

from falproxy import FalProxy
from falproxy.core.head import MAX_REQUEST_HEAD_BYTES
from falproxy.standalone.protocols import GuardedH11Protocol, GuardedHttpToolsProtocol
from tests.conftest import proxy_config, serve
from tests.support.live import ROUTE, open_socket, status_of
from tests.support.ports import free_port
from tests.support.proc_stats import rss_kib
from tests.support.procs import falproxy_serve, proxy_env

HEADER_TIMEOUT = 1.0
TARGET = "https://fal.run/fake/echo"
# The start of a request whose head never ends: one header value that keeps growing.
OPEN_HEAD = f"GET {ROUTE} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-fill: ".encode()
CHUNK = b"a" * 65536


class FastH11(GuardedH11Protocol):
    header_timeout = HEADER_TIMEOUT


class FastHttpTools(GuardedHttpToolsProtocol):
    header_timeout = HEADER_TIMEOUT


@pytest.fixture(scope="module", params=[FastHttpTools, FastH11], ids=["httptools", "h11"])
def guarded(request: pytest.FixtureRequest, fake_url: str) -> Iterator[str]:
    with serve(FalProxy(proxy_config(fake_url)), http=request.param) as url:
        yield url


def send_until_refused(sock: socket.socket, total: int) -> int:
    """Send ``total`` bytes of an unfinished head; how many went out before the server quit."""
    sent = 0
    with suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(OPEN_HEAD)
        while sent < total:
            sock.sendall(CHUNK)
            sent += len(CHUNK)
    return sent


def answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (TimeoutError if it keeps it open)."""
    sock.settimeout(timeout)
    received = b""
    with suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> float:
    """Drip ``drip`` every 0.2 s until the server closes; the seconds it took."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if drip:
                sock.sendall(drip)
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
    raise AssertionError(f"the server kept a slow head open for {seconds} s")


def test_an_oversized_head_is_cut_off_not_buffered(guarded: str) -> None:
    with open_socket(guarded) as sock:
        send_until_refused(sock, 2 * 1024 * 1024)
        refused = answer(sock)
    # httptools: falproxy's 431 at 64 KiB; h11 refuses at its own 16 KiB cap with a 400.
    assert status_of(refused) in (400, 431)
    if status_of(refused) == 431:
        assert refused.endswith(b'{"detail": "Request headers too large"}')


def send_head(sock: socket.socket, filler: int, piece: int = 1000) -> None:
    """A complete head with a ``filler``-byte header, in ``piece``-byte packets."""
    head = OPEN_HEAD + b"a" * filler + f"\r\nx-fal-target-url: {TARGET}\r\n\r\n".encode()
    for start in range(0, len(head), piece):
        sock.sendall(head[start : start + piece])


def test_a_head_sent_in_pieces_is_served(guarded: str) -> None:
    with open_socket(guarded) as sock:
        send_head(sock, 8 * 1024)  # under both parsers' caps (h11's own is 16 KiB)
        assert status_of(answer_one(sock)) == 200


def answer_one(sock: socket.socket) -> bytes:
    """One response with a Content-Length, read without waiting for the connection to close."""
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line[15:]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize(
    "drip",
    [b"", b"x"],
    ids=["a connection that sends nothing", "a head dripped byte by byte"],
)
def test_a_head_not_complete_in_time_is_closed(guarded: str, drip: bytes) -> None:
    with open_socket(guarded) as sock:
        if drip:
            sock.sendall(OPEN_HEAD)
        took = closed_within(sock, 10 * HEADER_TIMEOUT, drip)
    assert HEADER_TIMEOUT * 0.8 <= took <= HEADER_TIMEOUT + 2.0


def test_the_timeout_is_per_head_not_per_connection(guarded: str) -> None:
    """A keep-alive connection serving calls for longer than the timeout stays open."""
    with open_socket(guarded) as sock:
        request = f"GET {ROUTE} HTTP/1.1\r\nhost: x\r\nx-fal-target-url: {TARGET}\r\n\r\n"
        for _ in range(3):
            sock.sendall(request.encode())
            assert status_of(answer_one(sock)) == 200
            time.sleep(HEADER_TIMEOUT * 0.6)


def test_calls_are_served_while_slow_heads_drip(guarded: str) -> None:
    with ExitStack() as stack:
        slow = [stack.enter_context(open_socket(guarded)) for _ in range(50)]
        for sock in slow:
            sock.sendall(OPEN_HEAD)
        with httpx.Client(base_url=guarded, timeout=10) as client:
            for _ in range(5):
                response = client.get(ROUTE, headers={"x-fal-target-url": TARGET})
                assert response.status_code == 200
        deadline = time.monotonic() + HEADER_TIMEOUT + 3
        for sock in slow:
            closed_within(sock, max(0.1, deadline - time.monotonic()), b"y")


# --- falproxy serve itself ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(fake_url: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = proxy_env(fake_url, FALPROXY_HEADER_TIMEOUT=str(HEADER_TIMEOUT))
    with falproxy_serve(env, port) as server:
        yield f"http://127.0.0.1:{port}", server.process.pid


def test_serve_refuses_a_large_head_at_the_cap_and_memory_stays_flat(
    served: tuple[str, int],
) -> None:
    url, pid = served
    before = rss_kib(pid)
    sockets = [open_socket(url) for _ in range(4)]
    try:
        sent = [send_until_refused(sock, 20 * 1024 * 1024) for sock in sockets]
        answers = [answer(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    grown = rss_kib(pid) - before
    assert all(status_of(raw) == 431 for raw in answers)
    # The server stopped reading at the cap: far less than 20 MB went out (socket buffers
    # on both sides take a few MB at most), and the worker did not grow by what was sent.
    assert all(bytes_sent < 10 * 1024 * 1024 for bytes_sent in sent), sent
    assert grown < 20 * 1024, f"RSS grew by {grown} KiB"


def test_serve_still_serves_a_head_just_under_the_cap(served: tuple[str, int]) -> None:
    url, _ = served
    with open_socket(url) as sock:
        send_head(sock, MAX_REQUEST_HEAD_BYTES - 1024, piece=16384)
        assert status_of(answer_one(sock)) == 200


def test_serve_closes_dripping_heads_and_keeps_serving(served: tuple[str, int]) -> None:
    url, _ = served
    with ExitStack() as stack:
        slow = [stack.enter_context(open_socket(url)) for _ in range(200)]
        started = time.monotonic()
        for sock in slow:
            sock.sendall(OPEN_HEAD)
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(10):
                response = client.get(ROUTE, headers={"x-fal-target-url": TARGET})
                assert response.status_code == 200
        for sock in slow:
            closed_within(sock, max(0.1, started + HEADER_TIMEOUT + 5 - time.monotonic()), b"z")
    assert time.monotonic() - started < HEADER_TIMEOUT + 5
