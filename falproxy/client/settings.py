"""``UpstreamSettings``: how falproxy talks to fal, one value for every upstream client.

The relay's HTTP client (asyncio front ends), the WSGI path and the WebSocket handshakes
all read their TLS trust, timeouts, pool bounds and retry rule from here, so a setting such
as ``FALPROXY_UPSTREAM_CA_FILE`` cannot reach one client and miss another. The TLS context
is built once per CA file and shared.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from falproxy.client.tls import upstream_ssl_context

if TYPE_CHECKING:
    from falproxy.config.settings import ProxyConfig

# Idle pooled connections kept per proxy.
DEFAULT_MAX_IDLE: Final = 256
# An idle pooled connection is closed after this long: shorter than the keep-alive time of
# common servers (nginx 75 s, most load balancers 60 s), so the upstream rarely closes one
# just as a request is sent on it.
DEFAULT_KEEPALIVE_IDLE: Final = 15.0
# RFC 9110 section 9.2.2: methods whose effect is the same however often they are sent.
# Only these may be sent again after their bytes reached a connection that then died
# without answering; anything else (a POST that starts an inference) is answered 502.
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Every bound and trust decision of an upstream connection.

    Proxy environment variables (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``) are never
    honoured: the key goes to fal (or a mapped ``--upstream``) directly, or not at all.
    """

    connect_timeout: float = 10.0  # TCP connect and TLS handshake
    head_timeout: float = 300.0  # from the request's first byte to the response head
    idle_timeout: float = 300.0  # a response body (or stream) silent this long is cut
    ca_file: str | None = None  # PEM bundle trusted instead of the system store
    max_idle: int = DEFAULT_MAX_IDLE
    keepalive_idle: float = DEFAULT_KEEPALIVE_IDLE

    @classmethod
    def from_config(cls, config: ProxyConfig) -> UpstreamSettings:
        return cls(
            connect_timeout=config.connect_timeout,
            head_timeout=config.upstream_timeout,
            idle_timeout=config.stream_idle_timeout,
            ca_file=config.upstream_ca_file,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The verifying client context for ``https``/``wss`` upstreams (built once)."""
        return _context(self.ca_file)

    @staticmethod
    def may_resend(method: str) -> bool:
        """Whether a request whose bytes were written may be sent again on a new connection."""
        return method in IDEMPOTENT_METHODS


@functools.cache
def _context(ca_file: str | None) -> ssl.SSLContext:
    return upstream_ssl_context(ca_file)
