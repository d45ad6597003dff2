"""Every buffer and wait of ``falproxy serve`` has a bound, on both of its front ends.

Holes found by the wire-layer attack run (issue 18), each against a real ``falproxy
serve`` (the native protocol, and ``--server asgi``) on loopback:

* a client that pipelines requests and never reads grew the proxy's memory without bound;
* a client that stops reading a large response pinned the relay and its upstream
  connection until it left;
* there was no connection cap: silent sockets past the descriptor limit kept every real
  client out.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress

import httpx
import pytest

from tests.support.live import head, open_socket
from tests.support.ports import free_port
from tests.support.proc_stats import rss_kib
from tests.support.procs import FALPROXY, falproxy_serve, proxy_env, stop, wait_until_up
from tests.support.raw_server import serve_in_thread

SERVERS = ("native", "asgi")
# A hostile client pushes pipelined requests for WARM_UP then PUSH seconds without reading.
# In the first part the proxy may fill its socket and transport buffers and parse one
# read's worth of requests; after it, it must not grow at all (the hole: ~25 MiB/s).
WARM_UP_SECONDS = 1.5
PUSH_SECONDS = 3.0
MAX_FIRST_GROWTH_KIB = 64 * 1024
MAX_LATER_GROWTH_KIB = 4 * 1024


@contextmanager
def serve(
    server: str, fake_url: str, *, upstream: str | None = None, **env: str
) -> Iterator[tuple[str, int]]:
    variables = proxy_env(fake_url, **env)
    if upstream is not None:
        variables["FALPROXY_UPSTREAMS"] = f"fal.run={upstream}"
    port = free_port()
    with falproxy_serve(variables, port, "--server", server) as served:
        yield f"http://127.0.0.1:{port}", served.process.pid


def push_until_blocked(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send ``data`` again and again for ``seconds``, never reading; bytes sent."""
    sock.settimeout(0.2)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sent += sock.send(data)
        except TimeoutError:
            continue  # the proxy stopped reading: keep trying until the time is up
        except OSError:
            break
    return sent


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("path", ["/nothing", "/metrics"])
def test_pipelined_requests_never_read_do_not_grow_memory(
    server: str, path: str, fake_url: str
) -> None:
    request = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode() * 64
    with serve(server, fake_url) as (base, pid), open_socket(base) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        httpx.get(f"{base}/healthz")  # warm up before measuring
        before = rss_kib(pid)
        pushed = push_until_blocked(sock, request, WARM_UP_SECONDS)
        first = rss_kib(pid) - before
        pushed_later = push_until_blocked(sock, request, PUSH_SECONDS)
        later = rss_kib(pid) - before - first
    assert pushed > 0
    assert first < MAX_FIRST_GROWTH_KIB, f"grew {first} KiB after {pushed} bytes of requests"
    assert later < MAX_LATER_GROWTH_KIB, f"grew {later} KiB more ({pushed_later} bytes later)"


@pytest.mark.parametrize("server", SERVERS)
def test_a_client_that_never_reads_its_answers_is_dropped_after_the_idle_timeout(
    server: str, fake_url: str
) -> None:
    """Parked with unread answers (a FLUSHING connection), it is neither kept forever nor
    allowed to hold a place under the connection cap."""
    request = b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n" * 64
    with (
        serve(server, fake_url, FALPROXY_STREAM_IDLE_TIMEOUT="1") as (base, _),
        open_socket(base) as sock,
    ):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(0.2)
        deadline = time.monotonic() + 15
        dropped = False
        while time.monotonic() < deadline and not dropped:
            try:
                sock.send(request)
            except TimeoutError:
                continue
            except OSError:
                dropped = True  # the server reset the connection
        assert dropped, "a client that reads nothing kept its connection"


STREAMED_BYTES = 100 * 1024 * 1024
PIECE = b"x" * 65536


class Firehose:
    """An upstream streaming :data:`STREAMED_BYTES` per request; counts open connections."""

    def __init__(self) -> None:
        self.open = 0
        self.lock = threading.Lock()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self.lock:
            self.open += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n")
            writer.write(b"content-length: %d\r\n\r\n" % STREAMED_BYTES)
            with suppress(ConnectionError):
                for _ in range(STREAMED_BYTES // len(PIECE)):
                    writer.write(PIECE)
                    await writer.drain()
            writer.close()
        finally:
            with self.lock:
                self.open -= 1


@pytest.mark.parametrize("server", SERVERS)
def test_a_client_that_stops_reading_is_dropped_after_the_idle_timeout(
    server: str, fake_url: str
) -> None:
    clients = 20
    firehose = Firehose()
    with serve_in_thread(firehose) as upstream_port, ExitStack() as stack:
        upstream = f"http://127.0.0.1:{upstream_port}"
        base, _ = stack.enter_context(
            serve(server, fake_url, upstream=upstream, FALPROXY_STREAM_IDLE_TIMEOUT="1")
        )
        socks = []
        for _ in range(clients):
            sock = stack.enter_context(open_socket(base))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(head("GET", "https://fal.run/fake/big"))
            socks.append(sock)
        deadline = time.monotonic() + 10
        while firehose.open < clients and time.monotonic() < deadline:
            time.sleep(0.05)
        assert firehose.open == clients
        # The clients stay connected and read nothing: the proxy must let go by itself.
        deadline = time.monotonic() + 8
        while firehose.open and time.monotonic() < deadline:
            time.sleep(0.1)
        assert firehose.open == 0, f"{firehose.open} upstream connections still pinned"


def _open_file_limit(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@pytest.mark.parametrize("server", SERVERS)
def test_silent_connections_past_the_cap_do_not_keep_a_real_client_out(
    server: str, fake_url: str
) -> None:
    """A low descriptor limit and more silent sockets than it allows: calls still work."""
    variables = proxy_env(fake_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env_limit = 256
    with ExitStack() as stack:
        stack.enter_context(_limited_serve(variables, port, server, env_limit))
        silent = []
        for _ in range(300):
            try:
                silent.append(stack.enter_context(socket.create_connection(("127.0.0.1", port))))
            except OSError:
                break
        time.sleep(0.5)
        started = time.monotonic()
        with httpx.Client(timeout=5) as client:
            answers = [client.get(f"{base}/healthz").status_code for _ in range(5)]
        assert answers == [200] * 5
        assert time.monotonic() - started < 5


@contextmanager
def _limited_serve(env: dict[str, str], port: int, server: str, limit: int) -> Iterator[object]:
    """``falproxy serve`` under ``ulimit -n limit`` (set in the child before exec)."""
    command = [str(FALPROXY), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--server", server]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: _open_file_limit(limit),  # the point of the test
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        yield process
    finally:
        stop(process)
