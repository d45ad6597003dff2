"""Bounds on WebSockets once admitted: messages per identity, and open sockets per identity.

A socket passes the rate limit once, at its handshake; after that one socket could relay
any number of inferences. Two optional settings bound that, both counted per identity
(the identity's id, else the client address, like a rate rule's ``per=identity``):

- ``ws_message_rate`` (``FALPROXY_WS_MESSAGE_RATE``, e.g. ``10/second``): messages from
  clients to fal, across all the identity's sockets. Counted in the rate limiter's
  storage (memory, or Redis when ``redis_url`` is set, so shared by every worker), in a
  namespace of its own. The message over the limit is not relayed; the socket closes
  with 1008. A storage failure follows ``rate_limit_fail_open``.
- ``ws_max_sockets`` (``FALPROXY_WS_MAX_SOCKETS``): sockets open at once. Counted in this
  process only (a socket lives in one worker, and a count in Redis would outlive a
  killed worker); the handshake above the limit is refused with 429.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from falproxy.admission.ratelimit import RateLimiter, subject
from falproxy.core.client_address import DEFAULT_IPV6_PREFIX, budget_key
from falproxy.core.errors import ProxyError, TooManySockets
from falproxy.core.rate_rules import RateLimit

__all__ = ["MESSAGE_NAMESPACE", "MessageCheck", "SocketLimits"]

# Counter labels of the message rate in the shared storage, apart from the call limits.
MESSAGE_NAMESPACE = "ws-messages-"

MessageCheck = Callable[[], Awaitable[bool]]


class SocketLimits:
    """The message rate and open-socket count of one proxy (both optional)."""

    def __init__(
        self,
        *,
        message_rate: str | None,
        max_sockets: int | None,
        storage_url: str | None = None,
        fail_open: bool = True,
        on_error: Callable[[bool], None] = lambda admitted: None,
        on_limited: Callable[[str], None] = lambda label: None,
        ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
    ) -> None:
        self.max_sockets = max_sockets
        self._ipv6_prefix = ipv6_prefix
        self._open: dict[str, int] = {}  # who -> sockets open now; no entry at zero
        self._messages = (
            RateLimiter(
                (RateLimit(message_rate, per="identity"),),
                storage_url=storage_url,
                fail_open=fail_open,
                on_error=on_error,
                on_limited=on_limited,
                namespace=MESSAGE_NAMESPACE,
                ipv6_prefix=ipv6_prefix,
            )
            if message_rate
            else None
        )

    async def aclose(self) -> None:
        if self._messages is not None:
            await self._messages.aclose()

    def open_sockets(self, identity: str | None, address: str) -> int:
        """Sockets open now for this caller (for tests and gauges)."""
        return self._open.get(self._who(identity, address), 0)

    @contextmanager
    def socket(self, identity: str | None, address: str) -> Iterator[None]:
        """Hold one socket slot for the block; ``TooManySockets`` (429) when all are taken.

        No await between the check and the count: on one event loop, two handshakes
        cannot both take the last slot.
        """
        who = self._who(identity, address)
        held = self._open.get(who, 0)
        if self.max_sockets is not None and held >= self.max_sockets:
            raise TooManySockets(f"At most {self.max_sockets} open WebSockets per caller")
        self._open[who] = held + 1
        try:
            yield
        finally:
            left = self._open[who] - 1
            if left:
                self._open[who] = left
            else:
                del self._open[who]  # bounded: only callers with an open socket have an entry

    def _who(self, identity: str | None, address: str) -> str:
        """The caller: its identity, else its address (IPv6 by prefix, as the limiter keys it)."""
        return subject("identity", identity, budget_key(address, self._ipv6_prefix))

    def message_check(self, identity: str | None, address: str) -> MessageCheck | None:
        """A check to await before relaying each client message, or None when unlimited."""
        limiter = self._messages
        if limiter is None:
            return None

        async def allow() -> bool:
            try:
                await limiter.check(None, identity, address)
            except ProxyError:  # 429 (over the rate) or 503 (storage down, failing closed)
                return False
            return True

        return allow
