"""The native front end of ``falproxy serve`` (issue 14) over raw sockets.

Each test talks to a real ``falproxy serve`` subprocess (the native protocol is its
default) on loopback, in front of the fake fal or a hand-written upstream
(tests/support/raw_server.py): keep-alive and pipelining, the head's bounds, framing
refusals, ``Expect: 100-continue``, HTTP/1.0, WebSockets served natively
(tests/live/test_native_websocket.py has the rest), the hand-over of the fake's own HTTP
paths to uvicorn's protocol, a client leaving mid-response, response back-pressure and
graceful shutdown.
"""

from __future__ import annotations

import asyncio
import json
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress

import httpx
import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from falproxy.asgi.app import FalProxy
from falproxy.core.head import MAX_REQUEST_HEAD_BYTES
from falproxy.standalone.native import NativeHttpProtocol
from tests.conftest import proxy_config, serve
from tests.support.faulty_upstream import FaultyUpstream
from tests.support.live import head, open_socket, parse_response, status_of, wait_until
from tests.support.ports import free_port
from tests.support.proc_stats import rss_kib
from tests.support.procs import falproxy_serve, proxy_env
from tests.support.raw_server import serve_in_thread
from tests.support.ws_helpers import (
    pack,
    realtime_stats,
    refusal,
    relay_url,
    unpack,
)

HEADER_TIMEOUT = 1.0
ECHO = "https://fal.run/fake/echo"
ALLOWED_ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://evil.example.com"
JSON_TYPE = "content-type: application/json"


@pytest.fixture(scope="module")
def native(fake_url: str) -> Iterator[str]:
    env = proxy_env(
        fake_url,
        FALPROXY_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        FALPROXY_CORS_ORIGINS=ALLOWED_ORIGIN,
        FALPROXY_MAX_BODY_BYTES="65536",
    )
    port = free_port()
    with falproxy_serve(env, port):
        yield f"http://127.0.0.1:{port}"


def echo(body: bytes, *extra: str) -> bytes:
    """A raw POST of ``body`` to the fake's echo endpoint, with its Content-Length."""
    return head("POST", ECHO, JSON_TYPE, f"content-length: {len(body)}", *extra, body=body)


def read_responses(sock: socket.socket, count: int, timeout: float = 10.0) -> list[bytes]:
    """``count`` whole responses (Content-Length or chunked) read from ``sock`` in order."""
    sock.settimeout(timeout)
    data = b""
    found: list[bytes] = []
    while len(found) < count:
        end = _response_end(data)
        if end:
            found.append(data[:end])
            data = data[end:]
            continue
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(found)} responses: {data[:200]!r}"
        data += chunk
    return found


def _response_end(data: bytes) -> int:
    head_bytes, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return 0
    start = len(head_bytes) + 4
    headers = head_bytes.lower()
    if b"transfer-encoding: chunked" in headers:
        end = body.find(b"0\r\n\r\n")
        return start + end + 5 if end >= 0 else 0
    length = int(headers.split(b"content-length: ")[1].split(b"\r\n")[0])
    return start + length if len(body) >= length else 0


def closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def body_of(raw: bytes) -> dict[str, object]:
    answer: dict[str, object] = json.loads(parse_response(raw)[2])
    return answer


# --- keep-alive and pipelining ---------------------------------------------------------------


def test_keep_alive_serves_many_calls_on_one_connection(native: str) -> None:
    with open_socket(native) as sock:
        for index in range(20):
            sock.sendall(echo(json.dumps({"i": index}).encode()))
            (raw,) = read_responses(sock, 1)
            assert status_of(raw) == 200
            assert json.loads(str(body_of(raw)["body"])) == {"i": index}


def test_pipelined_requests_are_answered_in_order(native: str) -> None:
    requests = [echo(json.dumps({"i": index}).encode()) for index in range(3)]
    with open_socket(native) as sock:
        sock.sendall(b"".join(requests))  # one write: three requests
        answers = read_responses(sock, 3)
    bodies = [json.loads(str(body_of(raw)["body"])) for raw in answers]
    assert bodies == [{"i": index} for index in range(3)]


def test_keep_alive_closes_a_connection_idle_for_the_timeout_not_a_busy_one(
    fake_url: str,
) -> None:
    """The keep-alive timer is armed once per idle stretch (not per request) and, when it
    fires, measures the idleness since the last answer: a connection with a request every
    0.2 s outlives three 0.6 s timeouts; one left idle is closed after one."""
    app = FalProxy(proxy_config(fake_url))
    options = {"http": NativeHttpProtocol, "timeout_keep_alive": 0.6}  # a float: embedders do
    with (
        serve(app, scanned=False, **options) as base,
        open_socket(base) as busy,
        open_socket(base) as idle,
    ):
        for sock in (busy, idle):
            sock.sendall(echo(b"{}"))
            (raw,) = read_responses(sock, 1)
            assert status_of(raw) == 200
        answered = time.monotonic()
        idle_closed_after = None
        for _ in range(10):  # 2 s of calls on `busy`, 0.2 s apart
            time.sleep(0.2)
            busy.sendall(echo(b"{}"))
            (raw,) = read_responses(busy, 1)
            assert status_of(raw) == 200
            readable, _, _ = select.select([idle], [], [], 0)
            if readable and idle_closed_after is None:
                assert idle.recv(1) == b""  # closed by the server, nothing sent
                idle_closed_after = time.monotonic() - answered
        assert idle_closed_after is not None and 0.5 < idle_closed_after < 1.5


CHUNKED_POST = head(
    "POST",
    ECHO,
    JSON_TYPE,
    "transfer-encoding: chunked",
    # A CRLF CRLF inside the chunk data must not be taken for the end of the body.
    body=b'6\r\n{"a":1\r\n5\r\n\r\n\r\n}\r\n0\r\n\r\n',
)


def test_a_request_pipelined_after_a_chunked_body_is_served(native: str) -> None:
    with open_socket(native) as sock:
        sock.sendall(CHUNKED_POST + echo(b'{"second": true}'))
        first, second = read_responses(sock, 2)
    assert body_of(first)["body"] == '{"a":1\r\n\r\n}'
    assert body_of(second)["body"] == '{"second": true}'


def test_a_websocket_pipelined_after_a_chunked_body_is_served_intact(
    native: str, fake_rt: str
) -> None:
    """The upgrade's head, pipelined after a body in one write, is parsed exactly: no loss."""
    host, port = native.removeprefix("http://").split(":")
    path = relay_url(native).removeprefix(f"ws://{host}:{port}")
    upgrade = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    with open_socket(native) as raw:
        raw.sendall(CHUNKED_POST + upgrade)  # one write: the POST, then the upgrade
        raw.settimeout(10)
        received = b""
        # The 101 may come in the same read as the POST's answer: read until its head ends.
        while b"\r\n\r\n" not in received.partition(b"HTTP/1.1 101 ")[2]:
            data = raw.recv(4096)
            assert data, f"closed without an answer: {received[:300]!r}"
            received += data
    posted = received.partition(b"HTTP/1.1 101 ")[0]
    assert status_of(posted) == 200, posted[:200]
    assert body_of(posted)["body"] == '{"a":1\r\n\r\n}'
    assert realtime_stats(fake_rt)["opened"] == 1


# --- the head, and framing -------------------------------------------------------------------


def test_a_head_over_the_cap_is_refused_with_431(native: str) -> None:
    with open_socket(native) as sock:
        with suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head("GET", ECHO, "x-big: " + "a" * MAX_REQUEST_HEAD_BYTES))
        raw = b""
        sock.settimeout(5)
        with suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                raw += chunk
    assert status_of(raw) == 431
    assert raw.endswith(b'{"detail": "Request headers too large"}')


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nhost: x\r\n"], ids=["nothing", "half"])
def test_a_head_not_complete_in_time_is_closed(native: str, sent: bytes) -> None:
    with open_socket(native) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        assert closed(sock, HEADER_TIMEOUT + 3)
    assert HEADER_TIMEOUT * 0.8 <= time.monotonic() - started <= HEADER_TIMEOUT + 2


def test_garbage_gets_a_json_400_and_the_connection_closes(native: str) -> None:
    with open_socket(native) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00 not http\r\n\r\n")
        raw = sock.recv(65536)
        status, headers, body = parse_response(raw)
        assert status == 400
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        assert json.loads(body) == {"detail": "Malformed HTTP request"}
        assert closed(sock)


def test_length_and_chunked_together_are_refused(native: str, fake: httpx.Client) -> None:
    request = head(
        "POST",
        ECHO,
        JSON_TYPE,
        "content-length: 4",
        "transfer-encoding: chunked",
        body=b"2\r\n{}\r\n0\r\n\r\n",
    )
    with open_socket(native) as sock:
        sock.sendall(request)
        raw = sock.recv(65536)
        assert status_of(raw) == 400
        assert b'{"detail"' in raw
        assert closed(sock)
    assert fake.get("/__fake__/stats").json()["requests"] == 0


def test_expect_100_continue_is_answered_before_the_body_is_sent(native: str) -> None:
    body = b'{"prompt": "' + b"x" * 2000 + b'"}'
    with open_socket(native) as sock:
        sock.sendall(echo(body, "expect: 100-continue")[: -len(body)])
        sock.settimeout(5)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        (raw,) = read_responses(sock, 1)
    assert status_of(raw) == 200
    assert body_of(raw)["body"] == body.decode()


def test_http10_and_connection_close_close_after_the_response(native: str) -> None:
    stream = "https://fal.run/fake/slow-stream?events=2&interval=0.05"
    old = head("POST", stream, JSON_TYPE, "content-length: 2", body=b"{}").replace(
        b"HTTP/1.1", b"HTTP/1.0", 1
    )
    with open_socket(native) as sock:
        sock.sendall(old)
        raw = b""
        sock.settimeout(10)
        while chunk := sock.recv(65536):  # the end of the body is the end of the connection
            raw += chunk
    status, headers, body = parse_response(raw)
    assert status == 200
    assert headers["connection"] == "close"
    assert "transfer-encoding" not in headers  # an HTTP/1.0 client knows no chunked coding
    assert body.count(b"data:") == 2
    healthz = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    for request in (echo(b"{}", "connection: close"), healthz + b"connection: close\r\n\r\n"):
        with open_socket(native) as sock:
            sock.sendall(request + healthz + b"\r\n")
            (raw,) = read_responses(sock, 1)
            assert parse_response(raw)[1]["connection"] == "close"
            assert closed(sock)  # the second request is never served


# --- WebSockets and hand-over -----------------------------------------------------------------


def test_native_websockets_keep_the_origin_rule(native: str, fake_url: str) -> None:
    url = relay_url(native)
    code, answer = refusal(url, origin=OTHER_ORIGIN)
    assert (code, answer) == (403, {"detail": "WebSockets from this origin are not allowed"})
    assert realtime_stats(fake_url)["opened"] == 0
    with connect(url, origin=Origin(ALLOWED_ORIGIN)) as ws:
        ws.send(pack({"prompt": "a fox", "request_id": "native"}))
        assert unpack(ws.recv(timeout=10))["request_id"] == "native"


def test_fake_paths_are_served_by_the_native_parser_in_fake_mode() -> None:
    port = free_port()
    env = proxy_env("http://127.0.0.1:9")  # no key needed: --fake answers every call
    with falproxy_serve(env, port, "--fake", "--fake-speed", "0.05"):
        base = f"http://127.0.0.1:{port}"
        with open_socket(base) as sock:
            # A native call, the fake's own page, another call, then garbage: all in one
            # write on one connection, all read by the same llhttp front end (the garbage
            # gets the native JSON 400, not uvicorn's text one).
            fake_page = b"GET /_fake/__fake__/stats HTTP/1.1\r\nhost: x\r\n\r\n"
            sock.sendall(echo(b"{}") + fake_page + echo(b"{}") + b"NOT HTTP\r\n\r\n")
            call, page, again, refused = read_responses(sock, 4)
        assert status_of(call) == 200 and status_of(again) == 200
        assert body_of(call)["path"] == "/_fake/run/fake/echo"
        assert body_of(page)["requests"] == 1
        assert status_of(refused) == 400
        assert body_of(refused) == {"detail": "Malformed HTTP request"}


# --- the response: client gone, back-pressure, shutdown --------------------------------------


def test_a_client_leaving_mid_response_cancels_the_upstream_call(
    native: str, fake: httpx.Client
) -> None:
    stream = "https://fal.run/fake/slow-stream?events=200&interval=0.1"
    with open_socket(native) as sock:
        sock.sendall(head("POST", stream, JSON_TYPE, "content-length: 2", body=b"{}"))
        sock.settimeout(10)
        received = b""
        while b"data:" not in received:
            received += sock.recv(65536)
        assert fake.get("/__fake__/stats").json()["open_streams"] == 1
    wait_until(lambda: fake.get("/__fake__/stats").json()["open_streams"] == 0, timeout=10)
    assert fake.get("/__fake__/stats").json()["disconnected_streams"] == 1


STREAMED_BYTES = 512 * 1024 * 1024
PIECE = b"x" * 65536


class Firehose:
    """An upstream that streams :data:`STREAMED_BYTES` as fast as it is read; counts them."""

    def __init__(self) -> None:
        self.sent = 0
        self.lock = threading.Lock()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n")
        writer.write(b"content-length: %d\r\n\r\n" % STREAMED_BYTES)
        with suppress(ConnectionError):
            for _ in range(STREAMED_BYTES // len(PIECE)):
                writer.write(PIECE)
                await writer.drain()
                with self.lock:
                    self.sent += len(PIECE)
        writer.close()


def test_a_client_that_does_not_read_holds_the_upstream_back(fake_url: str) -> None:
    firehose = Firehose()
    with serve_in_thread(firehose) as upstream_port:
        env = proxy_env(fake_url)
        env["FALPROXY_UPSTREAMS"] = f"fal.run=http://127.0.0.1:{upstream_port}"
        port = free_port()
        with falproxy_serve(env, port) as served:
            pid = served.process.pid
            base = f"http://127.0.0.1:{port}"
            before = rss_kib(pid)
            with open_socket(base) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                sock.sendall(head("GET", "https://fal.run/fake/big"))
                time.sleep(3)  # read nothing while the upstream would send 512 MiB
                with firehose.lock:
                    sent = firehose.sent
                grown = rss_kib(pid) - before
    # Socket buffers on three hops hold a few MiB; the proxy itself holds about nothing.
    assert sent < 32 * 1024 * 1024, f"the upstream sent {sent} bytes to a stalled client"
    assert grown < 20 * 1024, f"the proxy grew by {grown} KiB"


def test_shutdown_closes_idle_connections_and_finishes_a_stream(fake_url: str) -> None:
    port = free_port()
    with falproxy_serve(proxy_env(fake_url), port) as served:
        base = f"http://127.0.0.1:{port}"
        stream = "https://fal.run/fake/slow-stream?events=5&interval=0.3"
        with open_socket(base) as idle, open_socket(base) as busy:
            idle.sendall(echo(b"{}"))
            read_responses(idle, 1)  # now idle, kept alive
            busy.sendall(head("POST", stream, JSON_TYPE, "content-length: 2", body=b"{}"))
            busy.settimeout(10)
            received = busy.recv(65536)
            served.process.send_signal(signal.SIGTERM)
            assert closed(idle, 3), "an idle keep-alive connection outlived the shutdown"
            while chunk := busy.recv(65536):
                received += chunk
        status, _, body = parse_response(received)
        assert status == 200 and body.count(b"data:") == 5
        assert received.endswith(b"0\r\n\r\n")  # finished, not cut off
        assert served.process.wait(timeout=20) == 0


@pytest.mark.parametrize("fault", ["short-body", "reset-mid-body", "bad-chunk"])
def test_a_response_the_upstream_breaks_off_reaches_the_client_truncated(
    fake_url: str, fault: str
) -> None:
    """Never a complete-looking response: the client gets the head, part of the body, and
    the connection closes before the declared length (or the last chunk)."""
    with FaultyUpstream().running() as faulty:
        # aiohttp neither fails nor ends after a malformed chunk: the idle timeout ends it.
        env = proxy_env(fake_url, FALPROXY_STREAM_IDLE_TIMEOUT="2")
        env["FALPROXY_UPSTREAMS"] = f"fal.run={faulty.url}"
        port = free_port()
        with falproxy_serve(env, port), open_socket(f"http://127.0.0.1:{port}") as sock:
            sock.sendall(
                head(
                    "POST",
                    f"https://fal.run/{fault}/app",
                    JSON_TYPE,
                    "content-length: 2",
                    body=b"{}",
                )
            )
            raw = b""
            sock.settimeout(15)
            with suppress(ConnectionResetError):
                while chunk := sock.recv(65536):
                    raw += chunk
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 200"), raw[:200]
    headers = head_bytes.lower()
    if b"content-length: " in headers:
        declared = int(headers.split(b"content-length: ")[1].split(b"\r\n")[0])
        assert len(body) < declared
    else:
        assert not body.endswith(b"0\r\n\r\n")
