"""The only module that talks WebSocket to fal (the ``websockets`` library's client).

One upstream connection per relayed socket, opened with the server's ``Authorization:
Key`` (the handshake fal documents for server-side clients) before the client's socket is
accepted, so that fal being unreachable is still an HTTP 502/504 to the client. The TLS
trust is :class:`~falproxy.client.settings.UpstreamSettings`' (``FALPROXY_UPSTREAM_CA_FILE``
included), the same as every other upstream client's; proxy environment variables are
never honoured and redirects never followed, so the key goes only where the policy sent it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from falproxy.client.settings import UpstreamSettings
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import UpstreamTimeout, UpstreamUnavailable

__all__ = ["UpstreamSocket", "WsLimits", "open_upstream", "upstream_logger"]

# How long closing the upstream may wait for fal's close frame before dropping the TCP link.
UPSTREAM_CLOSE_TIMEOUT: Final = 5.0
# RFC 9110 15.4: 3xx, redirection; never followed (the key would go where it was sent).
REDIRECTS: Final = range(300, 400)
# websockets logs every handshake header at DEBUG ("> authorization: Key ..."); these
# header names are masked in its records before any handler sees them.
MASKED_HANDSHAKE_HEADERS: Final = frozenset({"authorization"})
_HEADER_LINE: Final = "> %s: %s"


class _MaskCredentials(logging.Filter):
    """Replaces credential header values in the upstream library's handshake log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg != _HEADER_LINE or not isinstance(args, tuple) or len(args) != 2:
            return True
        name, _value = args
        if str(name).lower() in MASKED_HANDSHAKE_HEADERS:
            record.args = (name, "***")
        return True


class _NoRedirects(connect):
    """``websockets``' client with redirects switched off at their one decision point.

    websockets 15+ follows up to ``WEBSOCKETS_MAX_REDIRECTS`` (10) 3xx answers: it would
    resend ``Authorization: Key`` to a path the policy never checked, or connect to a host
    outside the allow-list. ``process_redirect`` decides whether a failed handshake is a
    redirect to follow; returning the error itself makes every 3xx fail like any other
    refused handshake (``InvalidStatus``), before a second connection is opened.
    """

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


# The logger handed to websockets for upstream connections, with the mask attached.
upstream_logger = logging.getLogger("falproxy.relay.socket.upstream")
upstream_logger.addFilter(_MaskCredentials())


@dataclass(frozen=True, slots=True)
class WsLimits:
    """The relay's bounds and the upstream's TLS trust, taken from :class:`ProxyConfig`."""

    max_message_bytes: int
    idle_timeout: float
    ping_interval: float
    ping_timeout: float
    max_queue: int
    open_timeout: float
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)

    @classmethod
    def from_config(cls, config: ProxyConfig) -> WsLimits:
        return cls(
            max_message_bytes=config.ws_max_message_bytes,
            idle_timeout=config.ws_idle_timeout,
            ping_interval=config.ws_ping_interval,
            ping_timeout=config.ws_ping_timeout,
            max_queue=config.ws_max_queue,
            open_timeout=config.connect_timeout,
            upstream=UpstreamSettings.from_config(config),
        )


class UpstreamSocket:
    """An open upstream connection; ``async with`` guarantees it is closed."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol fal chose among those the client offered."""
        return self.connection.subprotocol

    async def __aenter__(self) -> UpstreamSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.connection.close()


async def open_upstream(
    url: str,
    headers: Sequence[tuple[bytes, bytes]],
    subprotocols: Sequence[str],
    limits: WsLimits,
) -> UpstreamSocket:
    """Connect to ``url`` with exactly ``headers``; raise 502/504 ``ProxyError`` on failure.

    A ``wss`` URL is verified with the upstream settings' TLS context (never the library's
    default store when ``FALPROXY_UPSTREAM_CA_FILE`` is set); a certificate failure is a 502
    before any byte of the handshake (and so the key) is sent.
    """
    tls = limits.upstream.ssl_context() if url.startswith("wss:") else None
    try:
        connection = await _NoRedirects(
            url,
            ssl=tls,
            proxy=None,  # HTTPS_PROXY and friends are never honoured (client/settings.py)
            additional_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
            user_agent_header=None,
            subprotocols=[Subprotocol(p) for p in subprotocols] or None,
            compression=None,
            open_timeout=limits.open_timeout,
            ping_interval=limits.ping_interval,
            ping_timeout=limits.ping_timeout,
            close_timeout=UPSTREAM_CLOSE_TIMEOUT,
            max_size=limits.max_message_bytes,
            max_queue=limits.max_queue,
            logger=upstream_logger,
        )
    except TimeoutError:
        raise UpstreamTimeout("fal did not accept the WebSocket in time") from None
    except InvalidStatus as exc:
        status = exc.response.status_code
        if REDIRECTS.start <= status < REDIRECTS.stop:
            raise UpstreamUnavailable(
                f"fal answered the WebSocket with a redirect (HTTP {status}); "
                "redirects are never followed"
            ) from None
        raise UpstreamUnavailable(f"fal refused the WebSocket (HTTP {status})") from None
    except (InvalidHandshake, OSError):
        raise UpstreamUnavailable("The fal WebSocket could not be opened") from None
    return UpstreamSocket(connection)
