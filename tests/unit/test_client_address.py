"""Trusted X-Forwarded-For handling, as a table."""

from __future__ import annotations

import pytest

from falproxy.core.client_address import ClientAddress, parse_networks

TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1"])

CASES = [
    # peer, X-Forwarded-For, expected client
    ("198.51.100.7", "203.0.113.1", "198.51.100.7"),  # untrusted peer: header ignored
    ("10.1.2.3", "203.0.113.1", "203.0.113.1"),
    ("10.1.2.3", "203.0.113.1, 10.9.9.9", "203.0.113.1"),  # skip trusted hops
    ("10.1.2.3", "6.6.6.6, 203.0.113.1", "203.0.113.1"),  # spoofed prefix ignored
    ("10.1.2.3", "", "10.1.2.3"),
    ("10.1.2.3", "10.0.0.5", "10.0.0.5"),  # all trusted: the left-most
    ("127.0.0.1", "2001:db8::1", "2001:db8::1"),
]


@pytest.mark.parametrize(("peer", "forwarded", "expected"), CASES)
def test_client_address(peer: str, forwarded: str, expected: str) -> None:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {"client": (peer, 1234), "headers": headers}
    assert ClientAddress(TRUSTED)(scope) == expected


def test_no_trusted_proxies_and_no_client() -> None:
    assert ClientAddress(())({"headers": [(b"x-forwarded-for", b"1.2.3.4")]}) == "unknown"


def test_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        parse_networks(["nonsense"])
