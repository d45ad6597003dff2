"""The same malformed and ambiguous requests to both front ends of ``falproxy serve``.

Each request of the corpus (request-smuggling classics, the wire-layer findings, obs-fold,
bare LF, duplicate headers) goes to the native protocol and to ``--server asgi``
(uvicorn's httptools protocol); each answer is reduced to its status (0: the connection
closed without one). Both must agree, or the difference is listed in :data:`EXPLAINED`
with the reason — and then it must really differ, so the list stays true.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.ports import free_port
from tests.support.procs import falproxy_serve, proxy_env

ROUTE = b"/api/fal/proxy"
TARGET = b"x-fal-target-url: https://fal.run/fake/echo\r\n"
JSON = b"content-type: application/json\r\n"


def _post(
    *lines: bytes, body: bytes = b"{}", line: bytes = b"POST " + ROUTE + b" HTTP/1.1"
) -> bytes:
    return line + b"\r\nhost: 127.0.0.1\r\n" + TARGET + JSON + b"".join(lines) + b"\r\n" + body


CORPUS: dict[str, bytes] = {
    "valid": _post(b"content-length: 2\r\n"),
    "cl-and-te": _post(
        b"content-length: 2\r\n", b"transfer-encoding: chunked\r\n", body=b"2\r\n{}\r\n0\r\n\r\n"
    ),
    "te-not-chunked-last": _post(
        b"transfer-encoding: chunked, gzip\r\n", body=b"2\r\n{}\r\n0\r\n\r\n"
    ),
    "te-unknown": _post(b"transfer-encoding: xchunked\r\n", body=b"2\r\n{}\r\n0\r\n\r\n"),
    "two-equal-lengths": _post(b"content-length: 2\r\n", b"content-length: 2\r\n"),
    "two-lengths": _post(b"content-length: 2\r\n", b"content-length: 3\r\n", body=b"{} "),
    "length-plus-sign": _post(b"content-length: +2\r\n"),
    "length-trailing-space": _post(b"content-length: 2 \r\n"),
    "space-before-colon": _post(b"content-length : 2\r\n"),
    "obs-fold": _post(b"content-length: 2\r\n", b"x-fold: a\r\n b\r\n"),
    "bare-lf": b"POST /api/fal/proxy HTTP/1.1\nhost: 127.0.0.1\n"
    + b"x-fal-target-url: https://fal.run/fake/echo\ncontent-type: application/json\n"
    + b"content-length: 2\n\n{}",
    "nul-in-value": _post(b"content-length: 2\r\n", b"x-a: a\x00b\r\n"),
    "chunk-size-overflow": _post(
        b"transfer-encoding: chunked\r\n", body=b"ffffffffffffffffff1\r\n{}\r\n0\r\n\r\n"
    ),
    "chunk-extension": _post(b"transfer-encoding: chunked\r\n", body=b"2;x=1\r\n{}\r\n0\r\n\r\n"),
    "chunk-bare-lf": _post(b"transfer-encoding: chunked\r\n", body=b"2\n{}\n0\n\n"),
    "http10-chunked": _post(
        b"transfer-encoding: chunked\r\n",
        body=b"2\r\n{}\r\n0\r\n\r\n",
        line=b"POST " + ROUTE + b" HTTP/1.0",
    ),
    "http-version-1.2": _post(b"content-length: 2\r\n", line=b"POST " + ROUTE + b" HTTP/1.2"),
    "absolute-form": _post(
        b"content-length: 2\r\n", line=b"POST http://127.0.0.1" + ROUTE + b" HTTP/1.1"
    ),
    "lowercase-method": _post(b"content-length: 2\r\n", line=b"post " + ROUTE + b" HTTP/1.1"),
    "target-trailing-tab": ROUTE.join([b"POST ", b" HTTP/1.1\r\nhost: 127.0.0.1\r\n"])
    + b"x-fal-target-url: https://fal.run/fake/echo\t\r\n"
    + JSON
    + b"content-length: 2\r\n\r\n{}",
    "duplicate-host": _post(b"content-length: 2\r\n", b"host: evil.example.com\r\n"),
    "control-in-path": _post(b"content-length: 2\r\n", line=b"POST /api/fal/\x01proxy HTTP/1.1"),
}

# Requests the two front ends answer differently, and why that is acceptable.
EXPLAINED: dict[str, str] = {}
# The requests that are served (200), and why each is unambiguous; every other one is refused.
ACCEPTED: dict[str, str] = {
    "valid": "the control case",
    "absolute-form": "RFC 9112 section 3.2.2: a server must accept the absolute form",
    "chunk-extension": "RFC 9112 section 7.1.1: extensions are ignored, the size is exact",
    "http10-chunked": "one framing only; llhttp reads chunked from an HTTP/1.0 client",
    "length-trailing-space": "RFC 9110 section 5.5: trailing whitespace is not the value",
    "target-trailing-tab": "RFC 9110 section 5.5: trailing whitespace is not the value",
}


@pytest.fixture(scope="module")
def servers(fake_url: str) -> Iterator[dict[str, int]]:
    ports = {"native": free_port(), "asgi": free_port()}
    env = proxy_env(fake_url)
    with (
        falproxy_serve(env, ports["native"]),
        falproxy_serve(env, ports["asgi"], "--server", "asgi"),
    ):
        yield ports


def status_of(port: int, raw: bytes) -> int:
    """The status of the first response to ``raw``; 0 if the connection closed first."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    if not data.startswith(b"HTTP/1."):
        return 0
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_both_front_ends_agree_or_the_difference_is_explained(
    name: str, servers: dict[str, int]
) -> None:
    native = status_of(servers["native"], CORPUS[name])
    asgi = status_of(servers["asgi"], CORPUS[name])
    if name in EXPLAINED:
        assert native != asgi, f"{name} is no longer answered differently: drop it from EXPLAINED"
    else:
        assert native == asgi, f"{name}: native {native}, asgi {asgi}"
    # Only the unambiguous requests are served; every smuggling attempt is refused.
    if name in ACCEPTED:
        assert native == 200, f"{name}: {native}"
    else:
        assert not 200 <= native < 300 and not 200 <= asgi < 300, (name, native, asgi)
