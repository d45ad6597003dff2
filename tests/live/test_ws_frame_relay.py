"""Every guarantee of the relay, on the native front end's frame relay (relay/socket/splice.py).

A real ``falproxy serve`` relays to a fal played by raw sockets in this process, so fal
can misbehave in ways a WebSocket library would not let it: stop answering pings, stop
reading, vanish, send frames over the cap. What fal receives is recorded frame by frame,
masks included.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import TEST_KEY
from tests.support.ports import free_port
from tests.support.proc_stats import rss_kib
from tests.support.procs import Served, falproxy_serve, proxy_env
from tests.support.redis_support import RedisServer
from tests.support.ws_helpers import raw_handshake, refusal, relay_url, ws_base

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CAP = 4096


def read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, int, bytes, bytes | None]:
    """(first byte, opcode, unmasked payload, mask) of the next frame."""
    first, second = read_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(read_exact(sock, 2), "big")
    elif length == 127:
        length = int.from_bytes(read_exact(sock, 8), "big")
    mask = read_exact(sock, 4) if second & 0x80 else None
    payload = read_exact(sock, length)
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return first, first & 0x0F, payload, mask


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    first = (0x80 if fin else 0) | opcode
    flag = 0x80 if mask is not None else 0
    size = len(payload)
    if size < 126:
        head = bytes((first, flag | size))
    elif size < 1 << 16:
        head = bytes((first, flag | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, flag | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawFal:
    """fal on a loopback port, one thread per socket; the path names the behaviour."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: dict[str, list[tuple[int, bytes, bytes | None]]] = {}
        self.closes: dict[str, tuple[int, str]] = {}
        self.heads: dict[str, bytes] = {}
        self.ended: dict[str, threading.Event] = {}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ")[1].decode()
        name = path.split("/")[2]  # /fal-ai/<behaviour>/realtime
        key = next(
            v
            for k, _, v in (ln.partition(b": ") for ln in lines)
            if k.lower() == b"sec-websocket-key"
        )
        accept = base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())
        self.heads[name] = head
        if name == "bare-101":  # a 101 that names no upgrade and no accept key
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            time.sleep(5)
            conn.close()
            return
        self.seen[name] = []  # before the 101: a test reading these sees this socket's
        self.ended[name] = threading.Event()
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        try:
            getattr(self, "_" + name.replace("-", "_"))(conn, name)
        except (ConnectionError, OSError):
            pass
        finally:
            self.ended[name].set()
            conn.close()

    def _loop(self, conn: socket.socket, name: str, on_data: Callable[[int, bytes], None]) -> None:
        while True:
            first, opcode, payload, mask = read_frame(conn)
            self.seen[name].append((first, payload, mask))
            if opcode == 0x9:
                conn.sendall(frame(0xA, payload))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if payload else 1005
                self.closes[name] = (code, payload[2:].decode())
                conn.sendall(frame(0x8, payload))
                return
            elif opcode != 0xA:
                on_data(first, payload)

    def _echo(self, conn: socket.socket, name: str) -> None:
        self._loop(
            conn,
            name,
            lambda first, payload: conn.sendall(
                bytes((first & 0x8F,)) + frame(first & 0x0F, payload)[1:]
            ),
        )

    def _closer(self, conn: socket.socket, name: str) -> None:
        self._loop(
            conn,
            name,
            lambda first, payload: conn.sendall(
                frame(0x8, (4002).to_bytes(2, "big") + b"fal says bye")
            ),
        )

    def _vanish(self, conn: socket.socket, name: str) -> None:
        def drop(first: int, payload: bytes) -> None:
            raise ConnectionError("vanished")

        self._loop(conn, name, drop)

    def _big(self, conn: socket.socket, name: str) -> None:
        def send_big(first: int, payload: bytes) -> None:
            conn.sendall(frame(0x2, b"a" * 3000, fin=False) + frame(0x0, b"b" * 2000))

        self._loop(conn, name, send_big)

    def _deaf(self, conn: socket.socket, name: str) -> None:
        conn.settimeout(30)
        with suppress(OSError):
            while conn.recv(1, socket.MSG_PEEK):  # never reads: pings pile up unanswered
                time.sleep(0.2)

    def _flood(self, conn: socket.socket, name: str) -> None:
        conn.settimeout(3)  # a send blocked this long: the proxy holds fal back
        message = frame(0x2, os.urandom(64 * 1024))
        sent = 0
        with suppress(OSError):
            while sent < 400 * 1024 * 1024:
                conn.sendall(message)
                sent += len(message)
        self.closes[name] = (sent, "")


@pytest.fixture(scope="module")
def fal() -> Iterator[RawFal]:
    raw = RawFal()
    yield raw
    raw.listener.close()


def serve(fal: RawFal, **settings: str) -> Any:
    env = {
        **proxy_env("http://127.0.0.1:9"),
        "FALPROXY_UPSTREAMS": f"fal.run=http://127.0.0.1:{fal.port}",
    }
    env.update(settings)
    return falproxy_serve(env, free_port())


@pytest.fixture(scope="module")
def proxy(fal: RawFal) -> Iterator[str]:
    settings = {
        "FALPROXY_WS_MAX_MESSAGE_BYTES": str(CAP),
        "FALPROXY_WS_PING_INTERVAL": "0.5",
        "FALPROXY_WS_PING_TIMEOUT": "1",
    }
    with serve(fal, **settings) as served:
        url = served_url(served)
        PIDS[url] = served.process.pid
        yield url


PIDS: dict[str, int] = {}


def served_url(served: Served) -> str:
    args = served.process.args
    assert isinstance(args, list)
    return f"http://127.0.0.1:{args[args.index('--port') + 1]}"


def target(name: str) -> str:
    return f"wss://fal.run/fal-ai/{name}/realtime"


def wait(event: threading.Event) -> None:
    assert event.wait(10), "fal's side did not end"


def test_messages_are_relayed_and_remasked_with_a_fresh_key(proxy: str, fal: RawFal) -> None:
    base = proxy
    path = relay_url(base, target("echo")).removeprefix(ws_base(base))
    with raw_handshake(base, path) as sock:
        mask = b"\x01\x02\x03\x04"
        sock.sendall(frame(0x2, b"x" * 300, mask=mask) + frame(0x1, b"hi", fin=False, mask=mask))
        sock.sendall(frame(0x0, b" there", mask=mask))
        got = [read_frame(sock) for _ in range(3)]
    assert [(g[1], g[2], g[3]) for g in got] == [
        (2, b"x" * 300, None),
        (1, b"hi", None),
        (0, b" there", None),
    ]
    data = [entry for entry in fal.seen["echo"] if entry[0] & 0x0F in (0, 1, 2)]
    assert [payload for _, payload, _ in data] == [b"x" * 300, b"hi", b" there"]
    assert all(m is not None and m != mask for _, _, m in data)  # RFC 6455 5.3: our own key


def test_close_codes_cross_both_ways(proxy: str, fal: RawFal) -> None:
    with connect(relay_url(proxy, target("echo"))) as ws:
        ws.send(b"one")
        assert ws.recv(timeout=10) == b"one"
        ws.close(4001, "client says bye")
    wait(fal.ended["echo"])
    assert fal.closes["echo"] == (4001, "client says bye")
    with connect(relay_url(proxy, target("closer"))) as ws:
        ws.send(b"please close")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and (info.value.rcvd.code, info.value.rcvd.reason) == (
        4002,
        "fal says bye",
    )


def test_fal_vanishing_is_1011_to_the_client(proxy: str) -> None:
    with connect(relay_url(proxy, target("vanish"))) as ws:
        ws.send(b"bye")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


def test_the_size_cap_counts_across_fragments_from_the_client(proxy: str, fal: RawFal) -> None:
    base = proxy
    path = relay_url(base, target("echo")).removeprefix(ws_base(base))
    mask = os.urandom(4)
    with raw_handshake(base, path) as sock:
        sock.sendall(
            frame(0x2, b"a" * 3000, fin=False, mask=mask) + frame(0x0, b"b" * 2000, mask=mask)
        )
        _, opcode, payload, _ = read_frame(sock)
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1009
    wait(fal.ended["echo"])
    assert fal.closes["echo"][0] == 1009
    assert all(len(p) != 2000 for _, p, _ in fal.seen["echo"])  # the oversized frame never went


def test_the_size_cap_counts_across_fragments_from_fal(proxy: str) -> None:
    with connect(relay_url(proxy, target("big"))) as ws:
        ws.send(b"send me something big")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_rsv_bits_are_a_protocol_error(proxy: str) -> None:
    base = proxy
    path = relay_url(base, target("echo")).removeprefix(ws_base(base))
    with raw_handshake(base, path) as sock:
        raw = bytearray(frame(0x2, b"deflated?", mask=os.urandom(4)))
        raw[0] |= 0x40  # RSV1: permessage-deflate, never negotiated
        sock.sendall(bytes(raw))
        _, opcode, payload, _ = read_frame(sock)
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1002


def test_fal_deaf_to_pings_is_dropped_with_1011(proxy: str) -> None:
    with connect(relay_url(proxy, target("deaf"))) as ws:
        start = time.monotonic()
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    assert time.monotonic() - start < 5


def test_a_client_that_stops_reading_holds_fal_back(proxy: str, fal: RawFal) -> None:
    """fal floods 64 KiB messages at a client that reads nothing: fal's sends block after
    a few buffers' worth, and the proxy's memory stays flat."""
    served_pid = PIDS[proxy]
    before = rss_kib(served_pid)
    base = proxy
    path = relay_url(base, target("flood")).removeprefix(ws_base(base))
    with raw_handshake(base, path) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        wait(fal.ended["flood"])  # fal gave up: a send blocked for 3 s
        grown = rss_kib(served_pid) - before
    sent = fal.closes["flood"][0]
    assert sent < 32 * 1024 * 1024, sent  # kernel buffers and a few reads, not the flood
    assert grown < 16 * 1024, grown


def test_fal_that_stops_reading_holds_the_client_back(proxy: str) -> None:
    served_pid = PIDS[proxy]
    before = rss_kib(served_pid)
    base = proxy
    path = relay_url(base, target("deaf")).removeprefix(ws_base(base))
    with raw_handshake(base, path) as sock:
        sock.settimeout(2)
        message = frame(0x2, os.urandom(64 * 1024), mask=os.urandom(4))
        sent = 0
        with suppress(OSError):
            while sent < 200 * 1024 * 1024:
                sock.sendall(message)
                sent += len(message)
        grown = rss_kib(served_pid) - before
    assert sent < 32 * 1024 * 1024, sent
    assert grown < 16 * 1024, grown


def test_idle_and_rate_rules(fal: RawFal) -> None:
    settings = {"FALPROXY_WS_IDLE_TIMEOUT": "1", "FALPROXY_WS_MESSAGE_RATE": "3/minute"}
    with serve(fal, **settings) as served:
        base = served_url(served)
        with connect(relay_url(base, target("echo"))) as ws:
            start = time.monotonic()
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000
            assert 0.9 < time.monotonic() - start < 4
        with connect(relay_url(base, target("echo"))) as ws:
            for n in range(3):
                ws.send(b"m%d" % n)
                assert ws.recv(timeout=10) == b"m%d" % n
            ws.send(b"one too many")
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        wait(fal.ended["echo"])
        assert fal.closes["echo"][0] == 1008
        assert b"one too many" not in [p for _, p, _ in fal.seen["echo"]]
        log = wait_for_lines(served, 2)
    # One access line per socket; the refused message is neither relayed nor counted.
    sockets = [line for line in log.splitlines() if "websocket WEBSOCKET" in line]
    assert len(sockets) == 2, log
    assert "outcome=ok up=0 down=0" in sockets[0]
    assert "outcome=limited up=6 down=6" in sockets[1]
    # The key went to fal in the handshake, and nowhere else: no log line, no frame.
    lines = fal.heads["echo"].split(b"\r\n")[1:]
    fields = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines)}
    assert fields[b"authorization"] == f"Key {TEST_KEY}".encode()
    assert TEST_KEY not in log
    assert all(TEST_KEY.encode() not in p for _, p, _ in fal.seen["echo"])


def test_a_rate_check_that_waits_on_redis_holds_the_message(
    fal: RawFal, redis_server: RedisServer
) -> None:
    """With Redis the check cannot answer inline: the client's reading is held until it
    does, the allowed messages still arrive whole and in order, the refused one never."""
    settings = {"FALPROXY_WS_MESSAGE_RATE": "3/minute", "FALPROXY_REDIS_URL": redis_server.url}
    with (
        serve(fal, **settings) as served,
        connect(relay_url(served_url(served), target("echo"))) as ws,
    ):
        for n in range(3):
            ws.send(b"r%d" % n * 2000)  # two-byte tag repeated: more than one read's frame
        assert [ws.recv(timeout=10) for _ in range(3)] == [b"r%d" % n * 2000 for n in range(3)]
        ws.send(b"over")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    wait(fal.ended["echo"])
    assert b"over" not in [p for _, p, _ in fal.seen["echo"]]


def test_a_101_that_is_no_websocket_answer_is_a_502_at_once(proxy: str) -> None:
    started = time.monotonic()
    status, body = refusal(relay_url(proxy, target("bare-101")))
    assert (status, body) == (502, {"detail": "fal's WebSocket answer is not a valid upgrade"})
    assert time.monotonic() - started < 3  # not the open timeout


def wait_for_lines(served: Served, count: int) -> str:
    """The server's log once it holds ``count`` socket access lines (or after 10 s)."""
    deadline = time.monotonic() + 10
    while (log := served.stderr()).count("websocket WEBSOCKET") < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return log
