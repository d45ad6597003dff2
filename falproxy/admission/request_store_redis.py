"""The request store in Redis: shared by every worker and replica, failing closed.

The same meaning as :class:`~falproxy.admission.request_store.MemoryStore`, each change one
atomic Lua script: a hold checks every counter and holds on all of them or on none; a
settlement moves a hold to ``spent`` (guarded by ``SET NX`` when it must happen once per
request) and tallies the usage. Any Redis error raises
:class:`~falproxy.admission.request_store.StoreError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from falproxy.admission.request_store import (
    KEY_PREFIX,
    Counter,
    RequestRecord,
    Spent,
    StoreError,
    Tally,
    request_key,
)
from falproxy.config.extras import missing_extra_message
from falproxy.core.errors import ConfigError

# A dead Redis must cost a call milliseconds, not the OS's TCP timeout.
REDIS_SOCKET_TIMEOUT: Final = 0.5

# KEYS: counters; ARGV: amount, then each counter's limit, then each one's expiry.
_HOLD = """
local n = #KEYS
for i, key in ipairs(KEYS) do
  local spent = tonumber(redis.call('HGET', key, 'spent') or '0')
  local held = tonumber(redis.call('HGET', key, 'held') or '0')
  if spent + held >= tonumber(ARGV[1 + i]) then return {i, spent, held} end
end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'held', ARGV[1])
  redis.call('EXPIREAT', key, ARGV[1 + n + i])
end
return {0}
"""
# KEYS: the once key ('' for none), counters..., tallies...; ARGV: hold, cost, counter
# count, once ttl, then per tally its endpoint and expiry.
_SETTLE = """
if KEYS[1] ~= '' then
  if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then return 0 end
end
local n = tonumber(ARGV[3])
for i = 2, n + 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'spent', ARGV[2])
    redis.call('HINCRBY', KEYS[i], 'held', -tonumber(ARGV[1]))
  end
end
local t = 0
for i = n + 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], ARGV[5 + 2 * t], ARGV[2])
  redis.call('EXPIREAT', KEYS[i], ARGV[6 + 2 * t])
  t = t + 1
end
return 1
"""


class RedisStore:
    """The store in Redis, shared by every worker and replica; errors fail closed."""

    def __init__(self, url: str) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise ConfigError(
                missing_extra_message("FALPROXY_REDIS_URL", "redis", "redis")
            ) from None
        self._redis: Any = aioredis.from_url(
            url.removeprefix("async+"),
            socket_timeout=REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
            decode_responses=True,
        )
        self._hold = self._redis.register_script(_HOLD)
        self._settle = self._redis.register_script(_SETTLE)

    async def get_request(self, request_id: str) -> RequestRecord | None:
        raw = await self._call(self._redis.get(request_key(request_id)))
        return None if raw is None else RequestRecord.loads(raw)

    async def put_request(self, request_id: str, record: RequestRecord, ttl: float) -> None:
        key = request_key(request_id)
        await self._call(self._redis.set(key, record.dumps(), ex=max(1, round(ttl))))

    async def hold(self, counters: Sequence[Counter], amount: int) -> Spent | None:
        keys = [counter.key for counter in counters]
        args = [amount, *(c.limit for c in counters), *(c.expires_at for c in counters)]
        answer = await self._call(self._hold(keys=keys, args=args))
        if int(answer[0]) == 0:
            return None
        return Spent(int(answer[0]) - 1, int(answer[1]), int(answer[2]))

    async def settle(
        self,
        keys: Sequence[str],
        hold: int,
        cost: int,
        tallies: Sequence[Tally] = (),
        once: str | None = None,
        once_ttl: float = 0.0,
    ) -> bool:
        all_keys = [once or "", *keys, *(tally.key for tally in tallies)]
        args: list[str | int] = [hold, cost, len(keys), max(1, round(once_ttl))]
        for tally in tallies:
            args += [tally.endpoint, tally.expires_at]
        return bool(await self._call(self._settle(keys=all_keys, args=args)))

    async def snapshot(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for pattern in (f"{KEY_PREFIX}spend:*", f"{KEY_PREFIX}usage:*"):
            async for key in self._redis.scan_iter(match=pattern, count=500):
                fields = await self._redis.hgetall(key)
                found[key] = {name: int(value) for name, value in fields.items()}
        return found

    async def ping(self) -> bool:
        return bool(await self._call(self._redis.ping()))

    async def aclose(self) -> None:
        await self._redis.aclose()

    @staticmethod
    async def _call(pending: Any) -> Any:
        try:
            return await pending
        except Exception as exc:  # connection, timeout, protocol: all fail closed
            raise StoreError(type(exc).__name__) from None
