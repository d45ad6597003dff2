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


def _forwarded_hops(scope: Scope) -> list[str]:
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == FORWARDED_FOR:
            hops.extend(part.strip() for part in bytes(value).decode("latin-1").split(","))
    return [hop for hop in hops if hop]
