"""Reading a socket's target: one place, decoded once, wss on a WebSocket host only."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from falproxy.core.errors import InvalidTarget, MissingTarget, OriginNotAllowed
from falproxy.core.headers import CLIENT_PROXY_HEADER
from falproxy.core.sockets import check_socket_origin, read_socket_target, socket_request_headers
from falproxy.core.targets import Target


def read_ws_target(query: str = "", headers: list[tuple[bytes, bytes]] | None = None) -> Target:
    return read_socket_target(headers or [], query.encode())


def test_query_target_is_decoded_once() -> None:
    raw = "wss://fal.run/fal-ai/lcm/realtime?max_buffering=4"
    target = read_ws_target("other=1&fal_target_url=" + quote(raw, safe=""))
    assert target.url == raw


def test_header_target() -> None:
    target = read_ws_target(headers=[(b"x-fal-target-url", b"wss://ws.fal.run/a/b")])
    assert (target.scheme, target.host, target.path) == ("wss", "ws.fal.run", "/a/b")


@pytest.mark.parametrize(
    "query",
    [
        "fal_target_url=" + quote(quote("wss://fal.run/a/b", safe=""), safe=""),
        "fal_target_url=wss://fal.run/a/b&fal_target_url=wss://fal.run/a/b",
        "fal_target_url=" + quote("https://fal.run/a/b", safe=""),
        "fal_target_url=" + quote("wss://rest.fal.ai/tokens/", safe=""),
        "fal_target_url=" + quote("wss://fal.run/a/b\u00e9", safe=""),
        "fal_target_url=wss%3A%2F%2Ffal.run%2Fa%2F%2E%2E%2Fb",
    ],
)
def test_refused(query: str) -> None:
    with pytest.raises(InvalidTarget):
        read_ws_target(query)


def test_missing() -> None:
    with pytest.raises(MissingTarget):
        read_ws_target("fal_target=wss://fal.run/a/b")


def test_forwarded_headers_are_allow_listed() -> None:
    incoming = [
        (b"cookie", b"s=1"),
        (b"authorization", b"Bearer app-session"),
        (b"origin", b"https://app.example"),
        (b"user-agent", b"ua"),
        (b"x-fal-target-url", b"wss://fal.run/a/b"),
        (b"x-fal-runner-hint", b"h"),
        (b"sec-websocket-key", b"k"),
    ]
    out = socket_request_headers(incoming, b"Key server:key")
    assert out == (
        (b"user-agent", b"ua"),
        (b"x-fal-runner-hint", b"h"),
        (b"authorization", b"Key server:key"),
        CLIENT_PROXY_HEADER,
    )


def test_check_socket_origin_refuses_a_repeated_origin_or_host() -> None:
    own = [(b"host", b"127.0.0.1:8080"), (b"origin", b"http://127.0.0.1:8080")]
    check_socket_origin(own, "ws", ())
    for extra in ((b"origin", b"https://evil.example"), (b"host", b"evil.example")):
        with pytest.raises(OriginNotAllowed):
            check_socket_origin([*own, extra], "ws", ())
    with pytest.raises(OriginNotAllowed):
        check_socket_origin(
            [(b"host", b"a.example"), (b"origin", b"https://evil.example")], "wss", ()
        )
