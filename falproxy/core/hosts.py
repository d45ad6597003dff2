"""Which ``Host`` names the proxy answers to: the DNS-rebinding defence.

A page on ``http://attacker.example`` can make its own name resolve to 127.0.0.1 and then
drive a proxy listening on loopback with the developer's key. Browsers still send the
attacker's name in ``Host``, so a proxy that only answers to the names it is reachable by
cannot be driven that way. ``falproxy serve`` bound to a loopback address accepts only
loopback names unless ``FALPROXY_ALLOWED_HOSTS`` says otherwise; mounted in a framework,
the framework's own host checks (Django's ``ALLOWED_HOSTS``) apply and this list is empty
unless set.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from falproxy.core.errors import MisdirectedRequest

ANY_HOST = "*"
# Names that only ever mean this machine (RFC 6761 section 6.3 for localhost).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# The 421's detail names the setting to change (issue 19: a refusal says what to do).
MISDIRECTED_DETAIL = (
    f"{MisdirectedRequest.default_detail}; the names it answers to are FALPROXY_ALLOWED_HOSTS"
)


class HostRule:
    """The accepted ``Host`` names; empty means any."""

    def __init__(self, hosts: Sequence[str]) -> None:
        self._any = not hosts or ANY_HOST in hosts
        self._hosts = frozenset(host.strip().lower().strip("[]") for host in hosts)

    def check(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Raise 421 unless the request's ``Host`` names one of the accepted hosts."""
        if self._any:
            return
        hosts = [value for name, value in headers if name == b"host"]
        # RFC 9112 section 3.2: exactly one Host; two could be read differently upstream.
        if len(hosts) != 1 or host_name(hosts[0]) not in self._hosts:
            raise MisdirectedRequest(MISDIRECTED_DETAIL)


@functools.lru_cache(maxsize=1024)  # a few distinct Host values; bounded against sprays
def host_name(value: bytes) -> str:
    """The name part of a ``Host`` value: lower-case, without port or IPv6 brackets."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rpartition(":")[0] if text.count(":") == 1 else text


def is_loopback_bind(host: str) -> bool:
    """Whether a listening address only accepts connections from this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
