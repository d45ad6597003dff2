"""Helpers shared by the WebSocket tests: URLs, msgpack frames, raw sockets, fd counts."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any
from urllib.parse import quote

import httpx
import msgpack
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

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
