"""Header rules in both directions."""

from __future__ import annotations

import pytest

from falproxy.core.errors import InvalidHeaderValue
from falproxy.core.headers import (
    client_response_headers,
    field_value,
    key_needles,
    upstream_request_headers,
)


def test_request_allow_list() -> None:
    incoming = [
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"authorization", b"Bearer app-session"),
        (b"cookie", b"sid=1"),
        (b"x-fal-target-url", b"https://fal.run/a/b"),
        (b"x-fal-queue-priority", b"low"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"content-length", b"99"),
        (b"traceparent", b"00-abc-def-01"),
    ]
    out = dict(upstream_request_headers(incoming, b"Key k", 12))
    assert out[b"authorization"] == b"Key k"
    assert out[b"content-length"] == b"12"
    assert out[b"x-fal-queue-priority"] == b"low"
    assert out[b"traceparent"] == b"00-abc-def-01"
    assert b"cookie" not in out
    assert b"x-fal-target-url" not in out
    assert b"x-forwarded-for" not in out
    assert out[b"x-fal-client-proxy"].startswith(b"falproxy/")


def test_chunked_request_has_no_length() -> None:
    out = dict(upstream_request_headers([(b"content-length", b"5")], b"Key k", None))
    assert b"content-length" not in out


def test_response_drops_hop_by_hop_keeps_fal_headers() -> None:
    upstream = [
        (b"Content-Type", b"application/json"),
        (b"Connection", b"keep-alive, x-private"),
        (b"x-private", b"1"),
        (b"transfer-encoding", b"chunked"),
        (b"x-fal-request-id", b"rid"),
        (b"x-fal-request-timeout-type", b"user"),
    ]
    out, is_stream, _ = client_response_headers(upstream, KEY)
    names = [name for name, _ in out]
    assert not is_stream
    assert names == [b"content-type", b"x-fal-request-id", b"x-fal-request-timeout-type"]


def test_event_stream_gets_no_buffering_headers() -> None:
    out, is_stream, _ = client_response_headers(
        [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"max-age=9")],
        KEY,
    )
    assert is_stream
    assert (b"x-accel-buffering", b"no") in out
    assert (b"cache-control", b"no-cache") in out
    assert (b"cache-control", b"max-age=9") not in out


def test_response_drops_server_own_headers_and_cookies() -> None:
    out, _, _ = client_response_headers(
        [(b"date", b"x"), (b"server", b"fal"), (b"set-cookie", b"a=b"), (b"etag", b"1")], KEY
    )
    assert out == [(b"etag", b"1")]


def test_response_drops_fal_cors_headers() -> None:
    """Whether a browser origin may read the answer is the proxy's call (cors.py), not fal's."""
    out, _, _ = client_response_headers(
        [(b"access-control-allow-origin", b"*"), (b"Access-Control-Expose-Headers", b"x")], KEY
    )
    assert out == []


@pytest.mark.parametrize("value", [b"", b"cafe", b"a b\tc", bytes(range(0x20, 0x7F))])
def test_printable_ascii_values_are_forwarded_unchanged(value: bytes) -> None:
    assert field_value(value) == value
    headers = upstream_request_headers([(b"x-fal-note", value)], b"Key k", None)
    assert (b"x-fal-note", value) in headers


@pytest.mark.parametrize(
    "value", ["café".encode(), "café".encode("latin-1"), b"a\x00b", b"a\rb", b"\x7f", b"\x80"]
)
def test_other_bytes_in_a_forwarded_value_are_a_400(value: bytes) -> None:
    with pytest.raises(InvalidHeaderValue) as info:
        upstream_request_headers([(b"user-agent", value)], b"Key k", None)
    assert info.value.status == 400
    # A header that is never forwarded is not checked: it is the app's business.
    upstream_request_headers([(b"cookie", value)], b"Key k", None)


# --- issue 12: a key reflected by the upstream never reaches the client ----------------------

KEY = b"Key a-key-id:a-long-key-secret"


@pytest.mark.parametrize(
    "value",
    [
        b"Key a-key-id:a-long-key-secret",  # the whole Authorization value echoed
        b"a-key-id:a-long-key-secret",  # the key
        b"a-long-key-secret",  # the secret half alone
        b"you sent: Key a-key-id:a-long-key-secret (debug)",  # inside a longer value
    ],
)
def test_a_response_header_carrying_the_key_is_dropped_and_counted(value: bytes) -> None:
    upstream = [(b"x-echo-authorization", value), (b"x-fal-request-id", b"rid")]
    out, _, dropped = client_response_headers(upstream, KEY)
    assert out == [(b"x-fal-request-id", b"rid")]
    assert dropped == 1


def test_the_key_id_alone_is_not_a_secret() -> None:
    out, _, dropped = client_response_headers([(b"x-key-id", b"a-key-id")], KEY)
    assert out == [(b"x-key-id", b"a-key-id")]
    assert dropped == 0


def test_headers_dropped_for_other_reasons_are_not_counted_as_leaks() -> None:
    upstream = [(b"set-cookie", b"k=a-long-key-secret"), (b"connection", b"close")]
    out, _, dropped = client_response_headers(upstream, KEY)
    assert (out, dropped) == ([], 0)


@pytest.mark.parametrize(
    ("authorization", "needles"),
    [
        (b"Key id:a-long-secret", (b"a-long-secret",)),
        (b"key id:a-long-secret", (b"a-long-secret",)),  # the scheme is case-insensitive
        (b"Key id:short", (b"id:short",)),  # a short secret: the whole key
        (b"Key opaque-token", (b"opaque-token",)),  # no id: the whole key
        (b"", ()),
    ],
)
def test_what_betrays_a_key(authorization: bytes, needles: tuple[bytes, ...]) -> None:
    assert key_needles(authorization) == needles
