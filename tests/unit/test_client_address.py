"""Trusted X-Forwarded-For handling, as a table."""

from __future__ import annotations

import pytest

from falproxy.core.client_address import ClientAddress, budget_key, parse_networks

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


# --- issue 12: anonymous IPv6 callers share one budget per prefix ---------------------------


@pytest.mark.parametrize(
    ("address", "prefix", "key"),
    [
        ("203.0.113.7", 64, "203.0.113.7"),  # IPv4 as is
        ("2001:db8:1:2:aaaa::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"),  # same /64, same key
        ("2001:db8:1:3::1", 64, "2001:db8:1:3::/64"),  # the next /64 is another budget
        ("2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"),
        ("2001:db8::1", 128, "2001:db8::1/128"),
        ("::ffff:203.0.113.7", 64, "203.0.113.7"),  # IPv4-mapped: the IPv4 budget
        ("fe80::1%eth0", 64, "fe80::/64"),  # the zone id names no budget
        ("::1", 64, "::/64"),
        ("unknown", 64, "unknown"),
    ],
)
def test_the_budget_key_of_an_address(address: str, prefix: int, key: str) -> None:
    assert budget_key(address, prefix) == key
