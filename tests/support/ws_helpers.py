"""Helpers shared by the WebSocket tests: URLs, msgpack frames, raw sockets, fd counts."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any
from urllib.parse import quote

import httpx
import msgpack
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

ROUTE = "/api/fal/proxy"
REALTIME = "wss://fal.run/fal-ai/fast-lcm-diffusion/realtime"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BIG = 16 * 1024 * 1024  # client-side max message size for the big-frame tests


def ws_base(http_url: str) -> str:
    return "ws://" + http_url.removeprefix("http://")


def relay_url(proxy_url: str, target: str = REALTIME, route: str = ROUTE) -> str:
    """The proxy's socket URL with the target in ``fal_target_url``, encoded once."""
    return f"{ws_base(proxy_url)}{route}?fal_target_url={quote(target, safe='')}"


def direct_url(fake_url: str, app: str = "fal-ai/fast-lcm-diffusion", query: str = "") -> str:
    return f"{ws_base(fake_url)}/run/{app}/realtime" + (f"?{query}" if query else "")


def pack(value: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(value)
    return data


def unpack(data: bytes | str) -> dict[str, Any]:
    assert isinstance(data, bytes), "expected a binary frame"
    value = msgpack.unpackb(data)
    assert isinstance(value, dict)
    return value


def realtime_stats(fake_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{fake_url}/__fake__/realtime").json()
    return stats


def reset_realtime(fake_url: str) -> None:
    httpx.post(f"{fake_url}/__fake__/realtime/reset").raise_for_status()


def last_session(fake_url: str) -> dict[str, Any]:
    sessions = realtime_stats(fake_url)["sessions"]
    assert sessions, "the fake saw no realtime session"
    session: dict[str, Any] = sessions[-1]
    return session


def keep_busy(ws: ClientConnection, seconds: float, every: float = 0.2) -> int:
    """Send a 1 KiB message every ``every`` s for ``seconds``, checking each answer of the
    fake's realtime endpoint; the number of round trips."""
    message = os.urandom(1024)
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        ws.send(pack({"prompt": "busy", "echo": message, "request_id": str(sent)}))
        answer = unpack(ws.recv(timeout=5))
        assert (answer["request_id"], answer["echo"]) == (str(sent), message)
        sent += 1
        time.sleep(every)
    return sent


def assert_busy_socket_closes_normally(
    url: str, fake_url: str, seconds: float, *, fal_hears: int = 1000, **options: Any
) -> None:
    """A relayed socket kept busy for ``seconds`` stays open, then closes with 1000 as the
    client sees it and ``fal_hears`` as the fake fal sees it (``options`` go to
    ``connect``)."""
    reset_realtime(fake_url)
    with connect(url, max_size=2**22, **options) as ws:
        sent = keep_busy(ws, seconds)
        ws.close(1000, "done")
        assert ws.protocol.close_rcvd is not None, "the proxy never answered the close"
        assert ws.protocol.close_rcvd.code == 1000
    assert sent >= seconds / 0.3, f"only {sent} round trips in {seconds} s"
    deadline = time.monotonic() + 5
    session = last_session(fake_url)
    while "client_close_code" not in session and time.monotonic() < deadline:
        time.sleep(0.05)
        session = last_session(fake_url)
    assert session.get("client_close_code") == fal_hears, session


def raw_handshake(http_url: str, path: str) -> socket.socket:
    """A WebSocket opened by hand, so tests can misbehave in ways libraries refuse to."""
    sock, response = raw_upgrade(http_url, path)
    assert response.startswith(b"HTTP/1.1 101"), response[:80]
    return sock


def raw_upgrade(
    http_url: str, path: str, extra_headers: bytes = b""
) -> tuple[socket.socket, bytes]:
    """Send a handshake by hand (``extra_headers``: raw ``name: value\r\n`` lines, any
    bytes); return the socket and the response head (with any body bytes read so far)."""
    host, port = http_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    sock.sendall(request.encode() + extra_headers + b"\r\n")
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "connection closed during the handshake"
        response += chunk
    return sock, response


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set, masked as RFC 6455 5.3 requires); payload < 126 bytes."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + body


def refusal(url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a handshake the server answered with HTTP."""
    with pytest.raises(InvalidStatus) as info:
        connect(url, **kwargs).close()
    response = info.value.response
    return response.status_code, json.loads(bytes(response.body or b""))
