"""Opening handshakes written by hand (RFC 6455 section 4.1), good and bad, with the status
every front end answers them with: the corpus of the native/ASGI differential checks."""

from __future__ import annotations

import base64
import socket

KEY = base64.b64encode(b"sixteen byte key").decode()


def handshake(
    path: str,
    *more: str,
    method: str = "GET",
    version: str = "1.1",
    upgrade: str | None = "websocket",
    connection: str | None = "Upgrade",
    key: str | None = KEY,
    ws_version: str | None = "13",
    extra: str = "",
    host: bool = True,
) -> bytes:
    """The bytes of one handshake for ``path``; ``None`` leaves a header out; ``extra`` and
    ``more`` are further header lines."""
    lines = [f"{method} {path} HTTP/{version}"]
    if host:
        lines.append("Host: 127.0.0.1")
    for name, value in (
        ("Upgrade", upgrade),
        ("Connection", connection),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", ws_version),
    ):
        if value is not None:
            lines.append(f"{name}: {value}")
    lines.extend(line for line in (extra, *more) if line)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# name -> (keyword arguments of handshake(), the status every front end answers with).
HANDSHAKES: dict[str, tuple[dict[str, str | None], int]] = {
    "valid": ({}, 101),
    "no key": ({"key": None}, 400),
    "short key": ({"key": base64.b64encode(b"short").decode()}, 400),
    "key not base64": ({"key": "!!not base64!!"}, 400),
    "two keys": ({"extra": f"Sec-WebSocket-Key: {KEY}"}, 400),
    "no version": ({"ws_version": None}, 400),
    "version 8": ({"ws_version": "8"}, 400),
    "POST": ({"method": "POST", "extra": "Content-Length: 0"}, 405),
    "two protocols": ({"upgrade": "websocket, h2c"}, 400),
}


def answer_head(base_url: str, request: bytes) -> bytes:
    """The response head (and whatever came with it) the server sends to ``request``."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def status_of(raw: bytes) -> int:
    """The status of a raw response head; 0 when the server sent nothing."""
    return int(raw.split(b" ", 2)[1]) if raw else 0
