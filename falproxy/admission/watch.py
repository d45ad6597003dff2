"""What the relay tells ownership and budgets about a response: the ``CallWatch`` hooks.

The relay calls :meth:`CallWatch.head` once, when fal's response head has arrived and
before the response starts toward the client, and :meth:`CallWatch.end` once when the
call ends, however it ended. ``head`` may read the start of the body (a submit answer that
carries its ``request_id`` only in its JSON, at most :data:`MAX_SUBMIT_BODY` bytes) and
returns those bytes for the relay to send first, unchanged.

- :class:`SubmitWatch` writes the owner record (with the budget's hold) of a 2xx submit
  before the caller sees the request id, so an immediate status poll finds it.
- :class:`RunWatch` charges a sync run or stream from ``x-fal-billable-units``.
- :class:`ResultWatch` charges a queued request when its result first passes (once).
- ``end`` releases a hold that no answer settled (fal unreachable, the client gone).

A failure to record or charge after fal answered cannot undo fal's work: it is logged
and counted, and the response is relayed anyway.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from falproxy.admission.request_store import (
    RequestRecord,
    RequestStore,
    StoreError,
    once_key,
)
from falproxy.admission.spend import Budgets, Hold
from falproxy.core.errors import UpstreamBroken
from falproxy.core.headers import Headers
from falproxy.core.lifecycle import CallRecord
from falproxy.core.spend_rules import to_usd

logger = logging.getLogger("falproxy.admission.requests")

# fal's response header with the units a call is billed for (docs/fal-protocol.md §17).
BILLABLE_UNITS_HEADER: Final = b"x-fal-billable-units"
REQUEST_ID_HEADER: Final = b"x-fal-request-id"
# A submit answer is a few hundred bytes of JSON; read no more to find its request id.
MAX_SUBMIT_BODY: Final = 64 * 1024

ReadChunk = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class WatchContext:
    """What every watch of one proxy shares."""

    store: RequestStore | None
    budgets: Budgets | None
    ttl: float
    failed: Callable[[BaseException], None]


class CallWatch:
    """The base watch: nothing to learn from the head, nothing held."""

    hold: Hold | None = None

    def __init__(self, context: WatchContext, record: CallRecord) -> None:
        self._context = context
        self._record = record

    async def head(self, status: int, headers: Headers, read: ReadChunk | None) -> bytes:
        return b""

    async def end(self) -> None:
        """Release a hold nothing settled (no answer came, or it was not charged)."""
        hold, budgets = self.hold, self._context.budgets
        if hold is None or hold.settled or budgets is None:
            return
        try:
            await budgets.settle(hold, None, ok=False)
        except StoreError as exc:
            self._context.failed(exc)

    async def _charge(
        self, hold: Hold, headers: Headers, ok: bool, once: str | None = None
    ) -> None:
        budgets = self._context.budgets
        if budgets is None:
            return
        units = billable_units(headers)
        try:
            cost = await budgets.settle(hold, units, ok=ok, once=once, once_ttl=self._context.ttl)
        except StoreError as exc:
            self._context.failed(exc)
            logger.error("a call's cost could not be recorded (storage down)")
            return
        if cost is None:
            return  # charged already (a result read again): its units count once too
        self._record.billable_units = units
        self._record.cost_usd = to_usd(cost)


class RunWatch(CallWatch):
    """A sync run or stream: charged when its head arrives (fal has billed by then)."""

    def __init__(self, context: WatchContext, record: CallRecord, hold: Hold) -> None:
        super().__init__(context, record)
        self.hold = hold

    async def head(self, status: int, headers: Headers, read: ReadChunk | None) -> bytes:
        assert self.hold is not None
        await self._charge(self.hold, headers, ok=200 <= status < 300)
        return b""


class SubmitWatch(CallWatch):
    """A queue submit: its owner record, with its hold, written before the caller sees it."""

    def __init__(
        self,
        context: WatchContext,
        record: CallRecord,
        owner: str,
        endpoint: str,
        hold: Hold | None,
    ) -> None:
        super().__init__(context, record)
        self._owner = owner
        self._endpoint = endpoint
        self.hold = hold

    async def head(self, status: int, headers: Headers, read: ReadChunk | None) -> bytes:
        if not 200 <= status < 300:
            return b""  # nothing queued: end() releases the hold
        request_id = header_value(headers, REQUEST_ID_HEADER)
        prefix = b""
        if request_id is None and read is not None:
            prefix = await read_bounded(read, MAX_SUBMIT_BODY)
            request_id = request_id_in(prefix)
        if request_id is None:
            logger.warning("a submit answer named no request id: its result will be refused")
            return prefix
        hold = self.hold
        stored = RequestRecord(
            owner=self._owner,
            endpoint=self._endpoint,
            price=hold.price if hold else None,
            hold=hold.amount if hold else 0,
            counters=hold.counters if hold else (),
        )
        store = self._context.store
        assert store is not None
        try:
            await store.put_request(request_id, stored, self._context.ttl)
        except StoreError as exc:
            self._context.failed(exc)
            logger.error("a submitted request's owner record could not be written")
            return prefix
        if hold is not None:
            hold.settled = True  # the record carries it until the result is charged
        return prefix


class ResultWatch(CallWatch):
    """A queued request's result: charged the first time a 2xx result passes."""

    def __init__(
        self,
        context: WatchContext,
        record: CallRecord,
        request_id: str,
        stored: RequestRecord | None,
    ) -> None:
        super().__init__(context, record)
        self._request_id = request_id
        self._stored = stored

    async def head(self, status: int, headers: Headers, read: ReadChunk | None) -> bytes:
        stored = self._stored
        if stored is None or not 200 <= status < 300:
            return b""  # no record (never seen, or expired): nothing to charge against
        hold = Hold(stored.endpoint, stored.price, stored.hold, stored.counters, stored.owner)
        await self._charge(hold, headers, ok=True, once=once_key(self._request_id))
        return b""


def header_value(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def billable_units(headers: Headers) -> float | None:
    """``x-fal-billable-units`` as a non-negative number; None when absent or malformed."""
    raw = header_value(headers, BILLABLE_UNITS_HEADER)
    if raw is None:
        return None
    try:
        units = float(raw)
    except ValueError:
        return None
    return units if math.isfinite(units) and units >= 0 else None


async def read_bounded(read: ReadChunk, limit: int) -> bytes:
    """The body from ``read`` up to its end or ``limit`` bytes; a broken body ends it early
    (the relay then meets the same error and ends the response as truncated)."""
    data = b""
    try:
        while len(data) < limit and (chunk := await read()):
            data += chunk
    except UpstreamBroken:
        pass
    return data


def request_id_in(body: bytes) -> str | None:
    """The ``request_id`` of a submit answer's JSON (docs/fal-protocol.md §7.1)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = data.get("request_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None
