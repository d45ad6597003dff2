"""Request-level abuse, sent as raw bytes where httpx would refuse to build the request.

Run against both HTTP parsers uvicorn can use (httptools, the default when installed, and
h11), and against ``falproxy serve``'s native protocol (llhttp without ASGI): some abuse
is rejected by the server before the app sees it (a plain-text 400 from uvicorn, a JSON
400 from the native protocol), the rest by falproxy (a JSON 400/412/413/431). Either way
nothing reaches the upstream, and the proxy keeps serving.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from falproxy import FalProxy
from tests.conftest import proxy_config, serve
from tests.support.live import ROUTE, head, raw_request, status_of
from tests.support.ports import free_port
from tests.support.procs import falproxy_serve, proxy_env

TARGET = "https://fal.run/fake/echo"
JSON_TYPE = "content-type: application/json"
MAX_BODY = 4096


@pytest.fixture(scope="module", params=["httptools", "h11", "native"])
def abused(request: pytest.FixtureRequest, fake_url: str) -> Iterator[str]:
    if request.param == "native":  # `falproxy serve`'s own protocol (issue 14), as a process
        env = proxy_env(fake_url, FALPROXY_MAX_BODY_BYTES=str(MAX_BODY), FALPROXY_BODY_TIMEOUT="2")
        port = free_port()
        with falproxy_serve(env, port):
            yield f"http://127.0.0.1:{port}"
        return
    config = proxy_config(fake_url, max_body_bytes=MAX_BODY, body_timeout=2.0)
    with serve(FalProxy(config), http=request.param) as url:
        yield url


def _chunked(total: int) -> bytes:
    piece = b" " * 1000
    chunks = b"".join(b"3e8\r\n" + piece + b"\r\n" for _ in range(total // 1000))
    return chunks + b"0\r\n\r\n"


# (label, raw request, acceptable statuses, whether the upstream may see the request start).
# A streamed body is refused mid-way (413 past the cap, 408 on a stall): the upstream saw
# its head and part of it, then the connection is aborted, never a complete request.
CASES: list[tuple[str, bytes, set[int], bool]] = [
    (
        "content-length and transfer-encoding",
        head(
            "POST",
            TARGET,
            JSON_TYPE,
            "content-length: 4",
            "transfer-encoding: chunked",
            body=b"2\r\n{}\r\n0\r\n\r\n",
        ),
        {400},
        False,
    ),
    (
        "duplicate content-length, same value",
        head("POST", TARGET, JSON_TYPE, "content-length: 2", "content-length: 2", body=b"{}"),
        {400, 200},  # h11 folds identical duplicates into one (RFC 9112 section 6.3 allows it)
        True,
    ),
    (
        "duplicate content-length, different values",
        head("POST", TARGET, JSON_TYPE, "content-length: 2", "content-length: 7", body=b"{}GET / "),
        {400},
        False,
    ),
    (
        "negative content-length",
        head("POST", TARGET, JSON_TYPE, "content-length: -1"),
        {400},
        False,
    ),
    (
        "transfer-encoding other than chunked",
        head(
            "POST",
            TARGET,
            JSON_TYPE,
            "transfer-encoding: gzip, chunked",
            body=b"2\r\n{}\r\n0\r\n\r\n",
        ),
        {400, 501},
        False,
    ),
    (
        "bare LF inside the target header",
        b"GET " + ROUTE.encode() + b" HTTP/1.1\r\nhost: x\r\n"
        b"x-fal-target-url: https://evil.example/\nx: https://fal.run/a/b\r\n\r\n",
        {400, 412},
        False,
    ),
    (
        "bare CR inside the target header",
        b"GET " + ROUTE.encode() + b" HTTP/1.1\r\nhost: x\r\n"
        b"x-fal-target-url: https://fal.run/a/b\rhttps://evil.example/\r\n\r\n",
        {400, 412},
        False,
    ),
    (
        "obs-fold continuation of the target header",
        b"GET " + ROUTE.encode() + b" HTTP/1.1\r\nhost: x\r\n"
        b"x-fal-target-url: https://evil.example/\r\n https://fal.run/a/b\r\n\r\n",
        {400, 412},
        False,
    ),
    (
        "NUL in the target header",
        head("GET", "https://fal.run/a/b\x00.evil.example"),
        {400, 412},
        False,
    ),
    ("encoded CRLF in the target", head("GET", "https://fal.run/a/b%0d%0ax:%20y"), {412}, False),
    (
        "two target headers",
        head("GET", "https://fal.run/a/b", "x-fal-target-url: https://fal.run/c/d"),
        {412},
        False,
    ),
    ("oversized header", head("GET", TARGET, "x-big: " + "a" * 200_000), {400, 431}, False),
    (
        "numerous headers",
        head("GET", TARGET, *(f"x-h{i}: v" for i in range(5000))),
        {400, 431},
        False,
    ),
    (
        "chunked body over the cap with no length",
        head("POST", TARGET, JSON_TYPE, "transfer-encoding: chunked", body=_chunked(20_000)),
        {413},
        True,
    ),
    (
        "declared length over the cap",
        head("POST", TARGET, JSON_TYPE, f"content-length: {MAX_BODY + 1}"),
        {413},
        False,
    ),
    (
        "body shorter than its length, then silence",
        head("POST", TARGET, JSON_TYPE, "content-length: 100", body=b'{"a": 1'),
        {408},
        True,
    ),
]


@pytest.mark.parametrize(
    ("label", "data", "statuses", "may_start"), CASES, ids=[c[0] for c in CASES]
)
def test_abusive_request_is_refused_and_not_forwarded(
    abused: str,
    fake: httpx.Client,
    label: str,
    data: bytes,
    statuses: set[int],
    may_start: bool,
) -> None:
    before = fake.get("/__fake__/stats").json()["requests"]
    answer = raw_request(abused, data)
    assert status_of(answer) in statuses, answer[:300]
    body = answer.partition(b"\r\n\r\n")[2]
    assert b"Traceback" not in body
    forwarded = fake.get("/__fake__/stats").json()["requests"] - before
    if not may_start:
        assert forwarded == 0, "an abusive request reached the upstream"
    if status_of(answer) != 200:
        assert b'{"detail"' in body or b"Invalid HTTP request" in body or not body
    again = httpx.post(abused + ROUTE, headers={"x-fal-target-url": TARGET}, json={"a": 1})
    assert again.status_code == 200
