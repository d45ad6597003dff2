"""Where request owners and spend counters live: this process's memory, or Redis.

One small interface, two implementations with the same meaning:

- a **request record** per queued request id (who submitted it, to which endpoint, at what
  unit price, which spend counters hold an estimate for it), kept ``request_ttl`` seconds;
- a **spend counter** per (rule, window, subject): micro-dollars ``spent`` and ``held``
  (estimates of calls in flight), expiring a day after its window ends;
- a **usage tally** per (day or month, who): micro-dollars per endpoint, for
  ``falproxy usage``.

Redis makes them shared by every worker and replica; each change is one atomic Lua
script (a hold checks every counter and holds on all of them, or on none; a settlement
that must happen once per request is guarded by ``SET NX`` in the same script). Any Redis
error raises :class:`StoreError`: money and ownership fail closed, whatever
``FALPROXY_RATE_LIMIT_FAIL_OPEN`` says for rate limits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

from falproxy.config.extras import missing_extra_message
from falproxy.core.errors import ConfigError

KEY_PREFIX: Final = "falproxy:"
# A dead Redis must cost a call milliseconds, not the OS's TCP timeout.
REDIS_SOCKET_TIMEOUT: Final = 0.5
# Requests remembered by the memory store; past it the oldest are forgotten first.
MAX_MEMORY_RECORDS: Final = 500_000
# Counters outlive their window by a day: a queued request admitted in one window may
# be settled (its result read) in the next, and is charged to the window it held.
COUNTER_GRACE_SECONDS: Final = 24 * 3600


class StoreError(Exception):
    """The store (Redis) failed; callers refuse the call (503), never admit it blind."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the proxy remembers about one queued request it relayed the submit of."""

    owner: str  # "id:<identity>" or "anonymous"
    endpoint: str  # the full endpoint id it was submitted to
    price: float | None = None  # USD per unit, when budgets priced it
    hold: int = 0  # micro-dollars held on ``counters`` until its result is charged
    counters: tuple[str, ...] = ()  # spend counter keys the hold sits on

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> RequestRecord:
        data = json.loads(raw)
        data["counters"] = tuple(data.get("counters", ()))
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Counter:
    """One spend counter a call must fit: its key, its limit and when it expires."""

    key: str
    limit: int  # micro-dollars
    expires_at: int  # unix seconds


@dataclass(frozen=True, slots=True)
class Spent:
    """A counter that has no room left: which one, and its totals."""

    index: int  # into the counters asked about
    spent: int
    held: int


@dataclass(frozen=True, slots=True)
class Tally:
    """Where a charge is also tallied for ``falproxy usage``: key, endpoint, expiry."""

    key: str
    endpoint: str
    expires_at: int


class RequestStore(Protocol):
    async def get_request(self, request_id: str) -> RequestRecord | None: ...

    async def put_request(self, request_id: str, record: RequestRecord, ttl: float) -> None: ...

    async def hold(self, counters: Sequence[Counter], amount: int) -> Spent | None:
        """Hold ``amount`` on every counter, or (when one is spent) on none: its totals."""
        ...

    async def settle(
        self,
        keys: Sequence[str],
        hold: int,
        cost: int,
        tallies: Sequence[Tally] = (),
        once: str | None = None,
        once_ttl: float = 0.0,
    ) -> bool:
        """Replace ``hold`` by ``cost`` on ``keys``; with ``once``, only the first time."""
        ...

    async def snapshot(self) -> dict[str, dict[str, int]]:
        """Every live counter and tally: key -> fields (``spent``/``held`` or endpoints)."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def request_key(request_id: str) -> str:
    return f"{KEY_PREFIX}req:{request_id}"


def once_key(request_id: str) -> str:
    return f"{KEY_PREFIX}charged:{request_id}"


def open_store(redis_url: str | None) -> RequestStore:
    """Redis when a URL is given, else this process's memory."""
    return RedisStore(redis_url) if redis_url else MemoryStore()


class MemoryStore:
    """The store in this process's memory (one worker; refused with several, ops/workers)."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[RequestRecord, float]] = {}
        self._hashes: dict[str, tuple[dict[str, int], float]] = {}
        self._once: dict[str, float] = {}

    async def get_request(self, request_id: str) -> RequestRecord | None:
        entry = self._records.get(request_id)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    async def put_request(self, request_id: str, record: RequestRecord, ttl: float) -> None:
        self._records.pop(request_id, None)
        self._records[request_id] = (record, time.time() + ttl)
        while len(self._records) > MAX_MEMORY_RECORDS:
            del self._records[next(iter(self._records))]

    async def hold(self, counters: Sequence[Counter], amount: int) -> Spent | None:
        now = time.time()
        fields = [self._fields(counter.key, now) for counter in counters]
        for index, (counter, values) in enumerate(zip(counters, fields, strict=True)):
            if values.get("spent", 0) + values.get("held", 0) >= counter.limit:
                return Spent(index, values.get("spent", 0), values.get("held", 0))
        for counter, values in zip(counters, fields, strict=True):
            values["held"] = values.get("held", 0) + amount
            self._hashes[counter.key] = (values, counter.expires_at)
        return None

    async def settle(
        self,
        keys: Sequence[str],
        hold: int,
        cost: int,
        tallies: Sequence[Tally] = (),
        once: str | None = None,
        once_ttl: float = 0.0,
    ) -> bool:
        now = time.time()
        if once is not None:
            if self._once.get(once, 0.0) > now:
                return False
            self._once[once] = now + once_ttl
            self._prune_once(now)
        for key in keys:
            entry = self._hashes.get(key)
            if entry is None or entry[1] <= now:
                continue
            values = entry[0]
            values["spent"] = values.get("spent", 0) + cost
            values["held"] = values.get("held", 0) - hold
        for tally in tallies:
            values = self._fields(tally.key, now)
            values[tally.endpoint] = values.get(tally.endpoint, 0) + cost
            self._hashes[tally.key] = (values, tally.expires_at)
        return True

    async def snapshot(self) -> dict[str, dict[str, int]]:
        now = time.time()
        return {k: dict(v) for k, (v, expires) in self._hashes.items() if expires > now}

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

    def _fields(self, key: str, now: float) -> dict[str, int]:
        entry = self._hashes.get(key)
        if entry is None or entry[1] <= now:
            return {}
        return entry[0]

    def _prune_once(self, now: float) -> None:
        if len(self._once) > MAX_MEMORY_RECORDS:
            self._once = {k: t for k, t in self._once.items() if t > now}


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
