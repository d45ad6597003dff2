"""WebSockets served by the native front end itself (issue 18, review item 5).

Real ``falproxy serve`` subprocesses, native and ``--server asgi`` side by side, in front
of the fake fal: the same handshakes get the same statuses from both (the one deliberate
difference is explained where it is tested), a non-WebSocket upgrade is refused rather
than handed to another parser, a frame sent with the handshake is not lost, back-pressure
bounds what a client that stops reading can push, and in fake mode the fake fal's own
socket is served natively too.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import serve as serve_ws

from falproxy import FalProxy
from falproxy.standalone.native import NativeHttpProtocol
from tests.conftest import proxy_config, serve
from tests.support.live import open_socket
from tests.support.ports import free_port
from tests.support.procs import falproxy_serve, proxy_env
from tests.support.ws_handshakes import HANDSHAKES, answer_head, handshake, status_of
from tests.support.ws_helpers import (
    REALTIME,
    masked_frame,
    pack,
    raw_handshake,
    realtime_stats,
    relay_url,
    reset_realtime,
    unpack,
    ws_base,
)

TARGET = "/api/fal/proxy?fal_target_url=" + REALTIME.replace(":", "%3A").replace("/", "%2F")

# Beyond the corpus every front end shares: what both `falproxy serve` servers answer alike.
SAME_STATUS = {
    **{
        name: (handshake(TARGET, **kwargs), status) for name, (kwargs, status) in HANDSHAKES.items()
    },
    "upgrade to h2c": (handshake(TARGET, upgrade="h2c", key=None, ws_version=None), 400),
    "no host": (handshake(TARGET, host=False), 421),
    "off the route": (handshake("/elsewhere"), 404),
    "an ops path": (handshake("/healthz"), 404),
}


@pytest.fixture(scope="module")
def servers(fake_url: str) -> Iterator[dict[str, str]]:
    """``falproxy serve`` (native) and ``--server asgi``, same settings."""
    native, asgi = free_port(), free_port()
    env = proxy_env(fake_url)
    with falproxy_serve(env, native), falproxy_serve(env, asgi, "--server", "asgi"):
        yield {"native": f"http://127.0.0.1:{native}", "asgi": f"http://127.0.0.1:{asgi}"}


status = status_of


@pytest.mark.parametrize("case", SAME_STATUS, ids=list(SAME_STATUS))
def test_native_and_asgi_answer_a_handshake_alike(servers: dict[str, str], case: str) -> None:
    request, expected = SAME_STATUS[case]
    native = answer_head(servers["native"], request)
    assert status(answer_head(servers["asgi"], request)) == expected
    assert status(native) == expected, native[:300]
    if expected != 101:  # the native refusal is the proxy's JSON, and closes the connection
        head, _, body = native.partition(b"\r\n\r\n")
        assert b"content-type: application/json" in head.lower()
        assert b"connection: close" in head.lower()
        assert json.loads(body or b"{}").get("detail") or b"content-length: " in head


def test_http_1_0_handshakes_differ_and_why(servers: dict[str, str]) -> None:
    """RFC 6455 section 4.2.1: the handshake is "an HTTP/1.1 or higher GET request". The
    native front end holds to it (400); uvicorn accepts an HTTP/1.0 one (101)."""
    request = handshake(TARGET, version="1.0")
    assert status(answer_head(servers["native"], request)) == 400
    assert status(answer_head(servers["asgi"], request)) == 101


def test_a_non_websocket_upgrade_is_refused_not_handed_over(servers: dict[str, str]) -> None:
    raw = answer_head(
        servers["native"], handshake(TARGET, upgrade="h2c", key=None, ws_version=None)
    )
    _, _, body = raw.partition(b"\r\n\r\n")
    assert status(raw) == 400
    assert "Only WebSocket upgrades" in json.loads(body)["detail"]


def test_a_frame_sent_with_the_handshake_is_relayed(servers: dict[str, str], fake_url: str) -> None:
    """Bytes that arrive with the head are kept until the 101 and then parsed as frames."""
    reset_realtime(fake_url)
    message = pack({"prompt": "early", "request_id": "early"})
    with open_socket(servers["native"]) as sock:
        sock.sendall(handshake(TARGET) + masked_frame(0x2, message))
        received = b""
        deadline = time.monotonic() + 10
        while b"early" not in received and time.monotonic() < deadline:
            received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 101"), received[:200]
    assert b"early" in received
    assert b"sec-websocket-extensions" not in received.split(b"\r\n\r\n")[0].lower()


def test_permessage_deflate_is_never_negotiated(servers: dict[str, str]) -> None:
    url = relay_url(servers["native"])
    with connect(url, compression="deflate") as ws:  # the browser's offer
        assert ws.response.headers.get("sec-websocket-extensions") is None
        ws.send(pack({"prompt": "x"}))
        assert unpack(ws.recv(timeout=10))["images"]


def test_a_client_that_stops_reading_is_held_back(servers: dict[str, str]) -> None:
    """The fake answers each 256 KiB message with a 256 KiB echo; the client sends and never
    reads. Every hop's buffer is bounded, so its sends stall long before 64 MiB went out."""
    pushed = [0]
    stop = threading.Event()
    frame = _client_frame(pack({"prompt": "flood", "echo": os.urandom(256 * 1024)}))
    base = servers["native"]
    sock = raw_handshake(base, relay_url(base).removeprefix(ws_base(base)))

    def flood() -> None:
        with suppress(OSError):
            while not stop.is_set() and pushed[0] < FLOOD_CAP:
                sock.sendall(frame)
                pushed[0] += len(frame)

    with sock:
        sock.settimeout(2.0)
        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        time.sleep(4)
        stalled_at = pushed[0]
        time.sleep(1)
        stop.set()
        assert pushed[0] < FLOOD_CAP, "nothing held the client back"
        assert pushed[0] - stalled_at <= len(frame), "still sending freely"
        sender.join(timeout=5)


FLOOD_CAP = 64 * 2**20


def _client_frame(payload: bytes, opcode: int = 0x2, fin: bool = True) -> bytes:
    """One client frame of any length (RFC 6455 section 5.2), masked with a zero key
    (the mask bit is required of a client; a zero key leaves the payload as it is)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes([first, 0x80 | length])
    elif length < 2**16:
        header = bytes([first, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + length.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


def _read_until(sock: socket.socket, marker: bytes, seconds: float = 10) -> bytes:
    received = b""
    deadline = time.monotonic() + seconds
    sock.settimeout(seconds)
    while marker not in received and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_a_fragmented_message_is_reassembled(servers: dict[str, str], fake_url: str) -> None:
    message = pack({"prompt": "in pieces", "request_id": "fragments"})
    base = servers["native"]
    with raw_handshake(base, relay_url(base).removeprefix(ws_base(base))) as sock:
        sock.sendall(_client_frame(message[:5], fin=False))
        sock.sendall(_client_frame(message[5:], opcode=0x0))
        assert b"fragments" in _read_until(sock, b"fragments")


def test_invalid_utf8_text_closes_with_1007(servers: dict[str, str]) -> None:
    base = servers["native"]
    with raw_handshake(base, relay_url(base).removeprefix(ws_base(base))) as sock:
        sock.sendall(_client_frame(b"\xff\xfe", opcode=0x1))
        received = _read_until(sock, b"\x03\xef")  # a close frame's code 1007
    assert b"\x88" in received and b"\x03\xef" in received


def test_a_message_over_the_cap_closes_both_sides_with_1009(fake_url: str) -> None:
    reset_realtime(fake_url)
    port = free_port()
    env = proxy_env(fake_url, FALPROXY_WS_MAX_MESSAGE_BYTES="4096")
    with falproxy_serve(env, port), connect(relay_url(f"http://127.0.0.1:{port}")) as ws:
        ws.send(pack({"prompt": "small"}))
        assert unpack(ws.recv(timeout=10))["images"]
        ws.send(os.urandom(8192))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    deadline = time.monotonic() + 5
    session = realtime_stats(fake_url)["sessions"][-1]
    while "client_close_code" not in session and time.monotonic() < deadline:
        time.sleep(0.05)
        session = realtime_stats(fake_url)["sessions"][-1]
    assert session.get("client_close_code") == 1009, session


def test_fake_mode_serves_the_fakes_socket_natively() -> None:
    """--fake: the proxy's upstream socket comes back to the same server under /_fake,
    and the native front end serves both ends."""
    port = free_port()
    env = proxy_env("http://127.0.0.1:9")  # no key needed: --fake answers every call
    with falproxy_serve(env, port, "--fake", "--fake-speed", "0.05"):
        base = f"http://127.0.0.1:{port}"
        with connect(relay_url(base)) as ws:
            ws.send(pack({"prompt": "fake mode", "request_id": "fm"}))
            assert unpack(ws.recv(timeout=10))["request_id"] == "fm"
        stats = realtime_stats(f"{base}/_fake")
        assert stats["opened"] >= 1


def test_sigterm_closes_an_open_socket_with_1012_on_both_sides(fake_url: str) -> None:
    """Graceful shutdown: the client hears "service restart" (RFC 6455 7.4.1: 1012), fal
    hears the same through the relay, and the server exits 0 within its grace."""
    reset_realtime(fake_url)
    port = free_port()
    with falproxy_serve(proxy_env(fake_url, FALPROXY_SHUTDOWN_GRACE="5"), port) as served:
        with connect(relay_url(f"http://127.0.0.1:{port}")) as ws:
            ws.send(pack({"prompt": "before shutdown"}))
            assert unpack(ws.recv(timeout=10))["images"]
            served.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1012
        assert served.process.wait(timeout=15) == 0
    session = realtime_stats(fake_url)["sessions"][-1]
    assert session.get("client_close_code") == 1012, session


@pytest.mark.parametrize("server", ["native", "asgi"])
def test_a_client_leaving_while_fal_is_dialled_is_no_error(server: str) -> None:
    """fal answers the handshake after 1 s; the client has gone by then. The socket ends
    as "client gone", quietly: no traceback, no error line."""

    def slow(connection: Any, request: Any) -> None:
        time.sleep(1.0)  # websockets' sync server: this thread only

    quiet = logging.getLogger("tests.slow_upstream")  # it plays fal: it receives the key
    quiet.setLevel(logging.INFO)
    with serve_ws(lambda ws: ws.recv(), "127.0.0.1", 0, process_request=slow, logger=quiet) as fal:
        threading.Thread(target=fal.serve_forever, daemon=True).start()
        upstream = f"fal.run=http://127.0.0.1:{fal.socket.getsockname()[1]}"
        port = free_port()
        env = {**proxy_env("http://127.0.0.1:9"), "FALPROXY_UPSTREAMS": upstream}
        with falproxy_serve(env, port, "--server", server) as served:
            base = f"http://127.0.0.1:{port}"
            _handshake_only(base).close()
            time.sleep(2.0)
            assert httpx.get(f"{base}/healthz").status_code == 200
            log = served.stderr()
        fal.shutdown()
    assert "Traceback" not in log and "error serving" not in log, log[-2000:]


def _handshake_only(base: str) -> socket.socket:
    """A socket that sent a valid handshake, returned before any answer."""
    sock = open_socket(base)
    sock.sendall(handshake(relay_url(base).removeprefix(ws_base(base))))
    return sock


@pytest.fixture(scope="module")
def quick_pings(fake_url: str) -> Iterator[str]:
    """The native protocol in-process, pinging clients every 0.3 s (uvicorn's ws_ping_*)."""
    app = FalProxy(proxy_config(fake_url))
    options = {"ws_ping_interval": PING, "ws_ping_timeout": PING}
    with serve(app, scanned=False, http=NativeHttpProtocol, **options) as base:
        yield base


PING = 0.3


def test_a_client_that_answers_pings_stays(quick_pings: str) -> None:
    with connect(relay_url(quick_pings)) as ws:  # websockets answers pings by itself
        time.sleep(6 * PING)
        ws.send(pack({"prompt": "still here"}))
        assert unpack(ws.recv(timeout=10))["images"]


def test_a_client_deaf_to_pings_is_dropped(quick_pings: str) -> None:
    """A raw client that never answers: a ping arrives, then the connection is dropped
    once the pong is ``ws_ping_timeout`` late (like uvicorn's own WebSocket protocols)."""
    base = quick_pings
    with raw_handshake(base, relay_url(base).removeprefix(ws_base(base))) as sock:
        started = time.monotonic()
        received = b""
        sock.settimeout(5)
        with suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
        elapsed = time.monotonic() - started
    assert received.startswith(b"\x89"), received[:20]  # a ping frame came first
    assert elapsed < 3, f"dropped only after {elapsed:.1f} s"
