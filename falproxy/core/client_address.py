"""The caller's address, trusting ``X-Forwarded-For`` only from configured proxies.

Rate limits for anonymous callers are keyed by address, so a spoofable address is a
bypass. Trust assumption, enforced here: a forwarded header is believed only when the
TCP peer is one of ``trusted_proxies``; then the header is read right to left, skipping
further trusted hops, and the first untrusted address is the client. A client can
prepend anything it likes to the header, but never past a hop we trust.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from falproxy.core.types import Scope

FORWARDED_FOR = b"x-forwarded-for"  # de-facto standard; RFC 7239 `Forwarded` not parsed
UNKNOWN_CLIENT = "unknown"  # ASGI servers may omit `client` (e.g. Unix sockets)
# RFC 4291 section 2.5.4 / RFC 6177: one host or site gets a /64 (or more), so an IPv6 address
# alone names a budget an attacker can multiply by 2^64; IPv6 callers are keyed by prefix.
DEFAULT_IPV6_PREFIX = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """IPs or CIDRs (``10.0.0.0/8``); ValueError names the bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return tuple(networks)


class ClientAddress:
    """Resolve the client address of an ASGI scope."""

    def __init__(self, trusted: Sequence[Network]) -> None:
        self._trusted = tuple(trusted)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else UNKNOWN_CLIENT
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = _forwarded_hops(scope)
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)


def budget_key(address: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """The key an anonymous caller's rate budget is counted under.

    IPv4 addresses (and IPv4-mapped IPv6 ones) are keyed as the IPv4 address; other IPv6
    addresses by their ``/ipv6_prefix`` network, so one host cannot rotate through the
    addresses of its prefix for fresh budgets. Anything else (``unknown``) is kept as is.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    unscoped = ipaddress.IPv6Address(ip.packed)  # a zone id (fe80::1%eth0) names no budget
    return str(ipaddress.IPv6Network((unscoped, ipv6_prefix), strict=False))


def _forwarded_hops(scope: Scope) -> list[str]:
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == FORWARDED_FOR:
            hops.extend(part.strip() for part in bytes(value).decode("latin-1").split(","))
    return [hop for hop in hops if hop]
