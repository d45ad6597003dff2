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
from typing import Final, Protocol

KEY_PREFIX: Final = "falproxy:"
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
    """Redis when a URL is given (``request_store_redis.py``), else this process's memory."""
    if not redis_url:
        return MemoryStore()
    from falproxy.admission.request_store_redis import RedisStore

    return RedisStore(redis_url)


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
