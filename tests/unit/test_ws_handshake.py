"""The native front end's RFC 6455 opening handshake, as pure functions (ws_handshake.py)."""

from __future__ import annotations

import json

import pytest

from falproxy.core.answers import Answer
from falproxy.core.errors import ProxyError
from falproxy.standalone.native.ws_handshake import (
    check_handshake,
    is_websocket_upgrade,
    offered_subprotocols,
    refusal_head,
    switching_head,
)

# RFC 6455 section 1.3's own example: this key is answered with this accept value.
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
VALID = (
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-key", RFC_KEY),
    (b"sec-websocket-version", b"13"),
)


def without(name: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(field for field in VALID if field[0] != name)


def test_the_rfc_example_key_gets_the_rfc_accept_value() -> None:
    assert check_handshake("GET", "1.1", VALID) == RFC_ACCEPT


def test_tokens_are_matched_without_regard_to_case() -> None:
    headers = (*without(b"upgrade"), (b"upgrade", b"WebSocket"))
    assert check_handshake("GET", "1.1", headers) == RFC_ACCEPT


@pytest.mark.parametrize(
    ("method", "version", "headers", "status"),
    [
        ("POST", "1.1", VALID, 405),
        ("GET", "1.0", VALID, 400),
        ("GET", "1.1", without(b"upgrade"), 400),
        ("GET", "1.1", (*without(b"upgrade"), (b"upgrade", b"websocket, h2c")), 400),
        ("GET", "1.1", (*without(b"connection"), (b"connection", b"keep-alive")), 400),
        ("GET", "1.1", without(b"sec-websocket-key"), 400),
        ("GET", "1.1", (*VALID, (b"sec-websocket-key", RFC_KEY)), 400),
        ("GET", "1.1", (*without(b"sec-websocket-key"), (b"sec-websocket-key", b"c2hvcnQ=")), 400),
        ("GET", "1.1", (*without(b"sec-websocket-key"), (b"sec-websocket-key", b"!!")), 400),
        ("GET", "1.1", without(b"sec-websocket-version"), 400),
        ("GET", "1.1", (*without(b"sec-websocket-version"), (b"sec-websocket-version", b"8")), 400),
    ],
    ids=[
        "post",
        "http-1.0",
        "no-upgrade",
        "two-protocols",
        "no-connection-upgrade",
        "no-key",
        "two-keys",
        "short-key",
        "key-not-base64",
        "no-version",
        "version-8",
    ],
)
def test_bad_handshakes_are_refused_with_a_status(
    method: str, version: str, headers: tuple[tuple[bytes, bytes], ...], status: int
) -> None:
    with pytest.raises(ProxyError) as caught:
        check_handshake(method, version, headers)
    assert caught.value.status == status and caught.value.detail


def test_only_a_single_websocket_token_is_a_websocket_upgrade() -> None:
    assert is_websocket_upgrade(((b"upgrade", b" websocket "),))
    assert not is_websocket_upgrade(((b"upgrade", b"h2c"),))
    assert not is_websocket_upgrade(((b"upgrade", b"websocket"), (b"upgrade", b"h2c")))


def test_subprotocols_keep_the_clients_order() -> None:
    headers = ((b"sec-websocket-protocol", b"b, a"), (b"sec-websocket-protocol", b"c"))
    assert offered_subprotocols(headers) == ["b", "a", "c"]


def test_the_101_names_the_accept_value_and_no_extension() -> None:
    head = switching_head(RFC_ACCEPT, "x-fake-json", b"date: today\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-accept: " + RFC_ACCEPT + b"\r\n" in head
    assert b"sec-websocket-protocol: x-fake-json\r\n" in head
    assert b"extensions" not in head and head.endswith(b"date: today\r\n\r\n")


def test_a_refusal_is_the_answer_and_closes() -> None:
    raw = refusal_head(Answer.json(412, {"detail": "no"}), b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 412 Precondition Failed\r\n")
    assert b"connection: close" in head and json.loads(body) == {"detail": "no"}
