"""Header bytes outside printable ASCII: one rule on every path (issue 12 item 15).

Before, the ASGI relay sent ``café`` to fal re-encoded (UTF-8 bytes read as Latin-1, then
encoded again), the WSGI relay kept the bytes and a WebSocket handshake failed with 502.
Now a header the proxy would forward must be printable ASCII, else 400 before any
upstream I/O, on ASGI, WSGI and the WebSocket handshake alike. What the upstream
received is read from its raw request heads.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from flask import Flask

from falproxy import FalProxy
from falproxy.integrations.flask import register_fal_proxy
from falproxy.wsgi.proxy import SyncFalProxy
from tests.conftest import serve
from tests.support.hostile_upstream import (
    RecordingUpstream,
    accept_websocket,
    config_for,
    header_value,
    json_ok,
)
from tests.support.ws_helpers import ROUTE, raw_upgrade, relay_url
from tests.support.wsgi_server import serve_wsgi

FLUX = "https://fal.run/fal-ai/flux/dev"
CAFE_UTF8 = "café".encode()  # b"caf\xc3\xa9", what a client sending UTF-8 puts on the wire
CAFE_LATIN1 = "café".encode("latin-1")  # b"caf\xe9"
# (Control bytes are refused by the servers themselves, before the proxy sees them.)
REFUSED_VALUES = [CAFE_UTF8, CAFE_LATIN1]


@pytest.fixture
def asgi_url() -> Iterator[tuple[str, RecordingUpstream]]:
    with (
        RecordingUpstream(json_ok).running() as upstream,
        serve(FalProxy(config_for(upstream))) as url,
    ):
        yield url, upstream


@pytest.fixture
def wsgi_url() -> Iterator[tuple[str, RecordingUpstream]]:
    with RecordingUpstream(json_ok).running() as upstream:
        app = Flask(__name__)
        proxy = register_fal_proxy(app, SyncFalProxy(config_for(upstream)))
        try:
            with serve_wsgi(app) as url:
                yield url, upstream
        finally:
            proxy.close()


def call(url: str, **headers: bytes) -> httpx.Response:
    sent = {"x-fal-target-url": FLUX.encode(), "content-type": b"application/json", **headers}
    return httpx.post(url + ROUTE, headers=sent, content=b"{}", timeout=10)


@pytest.mark.parametrize("front", ["asgi_url", "wsgi_url"])
def test_http_refuses_non_ascii_forwarded_values_and_keeps_ascii_ones(
    front: str, request: pytest.FixtureRequest
) -> None:
    url, upstream = request.getfixturevalue(front)
    for value in REFUSED_VALUES:
        for name in ("x_fal_note", "user_agent"):
            response = call(url, **{name.replace("_", "-"): value})
            assert response.status_code == 400, (name, value)
            assert response.json() == {"detail": "A forwarded header value must be printable ASCII"}
    assert upstream.heads == []  # refused before any upstream I/O
    # Printable ASCII reaches the upstream byte for byte; a header never forwarded (the
    # app's own cookie) may hold anything.
    assert call(url, **{"x-fal-note": b"cafe ~!\t1", "cookie": CAFE_UTF8}).status_code == 200
    (head,) = upstream.heads
    assert header_value(head, b"x-fal-note") == b"cafe ~!\t1"
    assert header_value(head, b"cookie") is None


def handshake(proxy: str, extra: bytes) -> tuple[int, bytes]:
    """Status and body of a raw handshake carrying ``extra`` header lines."""
    path = relay_url(proxy).split(proxy.removeprefix("http://"), 1)[1]
    sock, response = raw_upgrade(proxy, path, extra)
    with sock:
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = header_value(head + b"\r\n\r\n", b"content-length")
        while length is not None and len(body) < int(length):
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
        if status == 101:
            sock.shutdown(socket.SHUT_RDWR)
    return status, body


def test_a_websocket_handshake_follows_the_same_rule() -> None:
    with RecordingUpstream(accept_websocket).running() as upstream:
        with serve(FalProxy(config_for(upstream))) as proxy:
            for value in REFUSED_VALUES:
                status, body = handshake(proxy, b"x-fal-note: " + value + b"\r\n")
                assert status == 400, value
                assert json.loads(body) == {
                    "detail": "A forwarded header value must be printable ASCII"
                }
            assert upstream.heads == []
            assert handshake(proxy, b"x-fal-note: cafe ~!\r\n")[0] == 101
        (head,) = upstream.heads
    assert header_value(head, b"x-fal-note") == b"cafe ~!"
