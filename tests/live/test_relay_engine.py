"""The upstream engine adds nothing and changes nothing: headers, URL bytes, body bytes.

A general HTTP client (aiohttp, httpx) would add ``User-Agent``, ``Accept`` and
``Accept-Encoding`` and decompress gzip on its own; falproxy's own client does none of it.
The upstream here is a raw ASGI recorder (not the fake) so the test sees exactly what
arrived; the client is a raw socket so that it sends no such headers itself.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from falproxy import FalCredential, FalProxy, ProxyConfig
from falproxy.core.pipeline import _parse_target_cached
from tests.conftest import serve

KEY = "engine-key-id:engine-key-secret"
GZIPPED = gzip.compress(b'{"status": "COMPLETED"}' * 20)


class Recorder:
    """Answers every call with a gzip-encoded body and remembers what it was sent."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls.append({"raw_path": scope["raw_path"], "headers": dict(scope["headers"])})
        headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": GZIPPED})


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def proxy_port(recorder: Recorder) -> Iterator[int]:
    with serve(recorder) as upstream_url:
        config = ProxyConfig(credential=FalCredential(KEY), upstreams={"fal.run": upstream_url})
        with serve(FalProxy(config)) as proxy_url:
            yield int(proxy_url.rsplit(":", 1)[1])


def raw_get(port: int, target: str) -> tuple[bytes, bytes]:
    """A bare HTTP/1.1 GET: only Host, the target and Connection: close."""
    request = (
        f"GET /api/fal/proxy HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"x-fal-target-url: {target}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.lower(), body


def test_no_headers_invented_and_body_not_decompressed(proxy_port: int, recorder: Recorder) -> None:
    head, body = raw_get(proxy_port, "https://fal.run/fal-ai/flux/dev")
    assert b"content-encoding: gzip" in head
    if b"transfer-encoding: chunked" in head:  # de-chunk: one chunk plus the last one
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    assert body == GZIPPED
    sent = recorder.calls[-1]["headers"]
    assert set(sent) == {b"host", b"authorization", b"x-fal-client-proxy"}


def test_url_bytes_reach_upstream_unchanged(proxy_port: int, recorder: Recorder) -> None:
    raw_get(proxy_port, "https://fal.run/fal-ai/a%3Ab%20c?x=%2F&y=1")
    assert recorder.calls[-1]["raw_path"] == b"/fal-ai/a%3Ab%20c"


def test_repeated_target_is_parsed_once(proxy_port: int) -> None:
    target = "https://fal.run/fal-ai/flux/requests/0b6e/status"
    raw_get(proxy_port, target)
    hits = _parse_target_cached.cache_info().hits
    raw_get(proxy_port, target)
    assert _parse_target_cached.cache_info().hits == hits + 1
