"""The WebSocket origin rule (falproxy/core/origins.py): pure, no sockets."""

from __future__ import annotations

import pytest

from falproxy.core.origins import origin_allowed, parse_origin

APP = ("https://app.example.com",)


def test_no_origin_is_a_server_side_client_and_passes() -> None:
    assert origin_allowed(None, "proxy.internal", "ws", ())
    assert origin_allowed(None, None, "wss", APP)


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://app.example.com", True),
        ("https://APP.example.com:443", True),  # same RFC 6454 tuple
        ("https://app.example.com/", True),
        ("https://evil.example", False),
        ("http://app.example.com", False),  # another scheme is another origin
        ("https://app.example.com:8443", False),
        ("https://app.example.com.evil.example", False),
        ("https://app.example.com@evil.example", False),
        ("https://user@app.example.com", False),  # an origin has no user info
        ("https://app.example.com/path", False),
        ("null", False),  # sandboxed frames and file:// pages
        ("", False),
        ("https://app.example.com:99999", False),
    ],
)
def test_listed_origins_only(origin: str, expected: bool) -> None:
    # The Host is irrelevant once origins are listed, even when it matches.
    assert origin_allowed(origin, "evil.example", "wss", APP) is expected


def test_a_listed_wildcard_allows_any_origin() -> None:
    assert origin_allowed("https://anything.example", "proxy", "ws", ("*",))
    assert origin_allowed("null", "proxy", "ws", ("*",))


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "expected"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", "ws", True),
        ("https://proxy.example", "proxy.example", "wss", True),
        ("https://proxy.example", "proxy.example:443", "wss", True),
        ("http://proxy.example", "proxy.example:80", "ws", True),
        ("http://[::1]:8080", "[::1]:8080", "ws", True),
        ("https://proxy.example", "proxy.example", "ws", False),  # ws serves http origins
        ("http://localhost:8080", "127.0.0.1:8080", "ws", False),  # names differ
        ("http://127.0.0.1:9999", "127.0.0.1:8080", "ws", False),
        ("https://evil.example", "127.0.0.1:8080", "ws", False),
        ("http://127.0.0.1:8080", None, "ws", False),  # no Host: no own origin
        ("http://127.0.0.1:8080", "evil@127.0.0.1:8080", "ws", False),
        ("http://127.0.0.1:8080", "127.0.0.1:8080", "gopher", False),
    ],
)
def test_without_a_list_only_the_own_origin(
    origin: str, host: str | None, scheme: str, expected: bool
) -> None:
    assert origin_allowed(origin, host, scheme, ()) is expected


def test_parse_origin() -> None:
    assert parse_origin("HTTPS://App.Example") == ("https", "app.example", 443)
    assert parse_origin("http://a.example:81") == ("http", "a.example", 81)
    assert parse_origin("ftp://a.example") is None
    assert parse_origin("https://a.example?x=1") is None
