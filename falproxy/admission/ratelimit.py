"""Declarative rate limits on the ``limits`` package's async API, in memory or Redis.

The same machinery slowapi uses, through ``limits.aio`` so a Redis round-trip never
blocks the event loop. A rule is ``"20/minute"`` plus, optionally, an endpoint glob,
who it counts (``identity``: the caller's identity, else its address; ``address``;
``global``: everyone together) and a cost per call. Every matching rule must admit a
call; the first that does not answers 429 with ``Retry-After`` and ``RateLimit-*``.

Text form (``FALPROXY_RATE_LIMIT``): rules separated by ``;``, each
``LIMIT [GLOB] [per=identity|address|global] [cost=N]``, e.g.
``"60/minute; 5/minute fal-ai/flux-pro/** cost=2"``.

Anonymous callers are counted by address, IPv6 ones by their ``/64`` (``ipv6_prefix``). A
token mint names aliases, not endpoints: it counts against every rule that would count a
call to an app a token for those aliases may call (any owner), besides the rules that
count every call.

When the storage fails (Redis down), the call is admitted (``fail_open``) or refused
with 503; either way the error is counted and logged once per outage, not per call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from falproxy.core.client_address import DEFAULT_IPV6_PREFIX, budget_key
from falproxy.core.errors import ConfigError, LimiterUnavailable, RateLimited
from falproxy.core.policy import alias_matcher, compile_glob
from falproxy.core.rate_rules import Per, RateLimit

if TYPE_CHECKING:  # imported where a limiter is built: 4.5 MB of RSS a proxy without
    # rate limits does not need (docs/performance.md)
    import limits
    from limits.aio.storage import Storage

logger = logging.getLogger("falproxy.admission.ratelimit")

KEY_NAMESPACE = "falproxy"  # first part of every counter key
# Redis key prefix; slowapi's Limiter uses limits' default "LIMITS", so a shared Redis
# keeps the app's own counters and the proxy's apart.
REDIS_KEY_PREFIX = "FALPROXY"
# A dead Redis must cost a call milliseconds, not the OS's TCP timeout.
REDIS_SOCKET_TIMEOUT = 0.5


@dataclass(frozen=True, slots=True)
class _Rule:
    item: limits.RateLimitItem
    matches: Callable[[str], object]
    names_alias: Callable[[str], bool]
    per: Per
    cost: int
    label: str


class RateLimiter:
    """Checks a call against every matching rule; raises 429/503 as configured.

    ``namespace`` prefixes the rules' counter labels, so that two limiters sharing one
    storage (the call limits and the WebSocket message rate) never share a counter.
    """

    def __init__(
        self,
        rules: Sequence[RateLimit],
        *,
        storage_url: str | None = None,
        fail_open: bool = True,
        on_error: Callable[[bool], None] = lambda admitted: None,
        on_limited: Callable[[str], None] = lambda label: None,
        namespace: str = "",
        ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
    ) -> None:
        import limits
        from limits.aio.strategies import FixedWindowRateLimiter

        self.storage = _storage(storage_url)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.fail_open = fail_open
        self._on_error = on_error
        self._on_limited = on_limited
        self._failing = False
        self._ipv6_prefix = ipv6_prefix
        self._rules = tuple(
            _Rule(
                limits.parse(rule.limit),
                compile_glob(rule.endpoints).fullmatch,
                alias_matcher(rule.endpoints),
                rule.per,
                rule.cost,
                f"{namespace}{index}",
            )
            for index, rule in enumerate(rules)
        )

    async def aclose(self) -> None:
        """Close the Redis connection pool (memory storage holds no connection).

        ``limits`` has no public close; its Redis storage keeps the client on a bridge.
        Closing it on shutdown keeps pooled sockets from outliving the event loop.
        """
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()

    async def check(self, app_id: str | None, identity: str | None, address: str) -> None:
        """Count one call; raise ``RateLimited`` or ``LimiterUnavailable`` to refuse it."""
        matching = [rule for rule in self._rules if rule.matches(app_id or "")]
        await self._count(matching, identity, address)

    async def check_mint(self, apps: Sequence[str], identity: str | None, address: str) -> None:
        """Count a token mint naming ``apps`` (aliases) against the rules of those apps.

        The rules that count every call (they match no app id at all) counted the mint
        when it was admitted; each other rule that could match an app a token for those
        aliases may call counts it once here, however many of the aliases it matches.
        """
        matching = [
            rule
            for rule in self._rules
            if not rule.matches("") and any(map(rule.names_alias, apps))
        ]
        await self._count(matching, identity, address)

    async def _count(self, rules: Sequence[_Rule], identity: str | None, address: str) -> None:
        for rule in rules:
            who = subject(rule.per, identity, budget_key(address, self._ipv6_prefix))
            if not await self._hit(rule, who):
                self._on_limited(rule.label)
                raise RateLimited(headers=await self._headers(rule, who))

    async def _hit(self, rule: _Rule, who: str) -> bool:
        try:
            admitted = await self.limiter.hit(
                rule.item, KEY_NAMESPACE, rule.label, who, cost=rule.cost
            )
        except Exception as exc:  # any storage failure: connection, timeout, protocol
            self._storage_failed(exc)
            return True
        if self._failing:
            self._failing = False
            logger.warning("rate limit storage is back")
        return admitted

    def _storage_failed(self, exc: Exception) -> None:
        self._on_error(self.fail_open)
        if not self._failing:
            self._failing = True
            policy = "admitting calls (fail open)" if self.fail_open else "refusing calls"
            logger.warning("rate limit storage failed (%s); %s", type(exc).__name__, policy)
        if not self.fail_open:
            raise LimiterUnavailable(headers={"retry-after": "1"})

    async def _headers(self, rule: _Rule, who: str) -> dict[str, str]:
        """Retry-After (RFC 9110, whole seconds) and the IETF draft RateLimit-* fields."""
        try:
            stats = await self.limiter.get_window_stats(rule.item, KEY_NAMESPACE, rule.label, who)
            reset = max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:
            reset = rule.item.get_expiry()
        return {
            "retry-after": str(reset),
            "ratelimit-limit": str(rule.item.amount),
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(reset),
        }


def subject(per: Per, identity: str | None, address: str) -> str:
    """Whose counter a call counts against: ``id:<identity>``, ``ip:<address>`` or ``*``."""
    if per == "global":
        return "*"
    if per == "identity" and identity is not None:
        return f"id:{identity}"
    return f"ip:{address}"


def _storage(url: str | None) -> Storage:
    import limits.errors
    from limits.aio.storage import MemoryStorage, RedisStorage

    if not url:
        return MemoryStorage()
    try:
        return RedisStorage(
            url,
            implementation="redispy",
            key_prefix=REDIS_KEY_PREFIX,
            socket_timeout=REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        )
    except limits.errors.ConfigurationError:
        raise ConfigError(
            "a Redis URL needs the redis package: pip install 'falproxy[redis]'"
        ) from None
