"""Request ownership and spend budgets at admission, and what the relay tells them after.

Every front end admits a call through :meth:`Pipeline.admit
<falproxy.admission.pipeline.Pipeline.admit>`, which asks :meth:`RequestGuard.admit`
once the caller's identity is known, before fal is called:

- a read of a queued request (status, status stream, logs, cancel, result) passes only
  for the identity that submitted it through this proxy (``ownership.py``); anyone else,
  and any id the proxy has no record of, gets 404 and nothing reaches fal;
- new work on a budgeted app holds an estimate or is refused with 402 (``spend.py``).

What only the response can tell (the submit's request id, ``x-fal-billable-units``) comes
back through a :class:`~falproxy.admission.watch.CallWatch` that the relay calls once when
fal's response head arrives, before the response starts (so the owner record exists
before the caller can poll), and once when the call ends.

Storage errors refuse the call with 503 (:class:`~falproxy.core.errors.StoreUnavailable`),
logged once per outage and counted in ``falproxy_request_store_errors_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from falproxy.admission.ownership import Ownership
from falproxy.admission.pricing import Prices
from falproxy.admission.request_store import RequestStore, StoreError, open_store
from falproxy.admission.spend import Budgets
from falproxy.admission.watch import CallWatch, ResultWatch, RunWatch, SubmitWatch, WatchContext
from falproxy.config.budgets import ownership_enabled, price_table
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import StoreUnavailable
from falproxy.core.lifecycle import CallRecord
from falproxy.core.queue_calls import CallKind, classify
from falproxy.core.targets import Target

logger = logging.getLogger("falproxy.admission.requests")

PRICING_BASE = "https://api.fal.ai"


class RequestGuard:
    """Ownership and budgets of one proxy; inert (``active`` false) when both are off."""

    def __init__(self, config: ProxyConfig, on_error: Callable[[], None]) -> None:
        self.ownership_on = ownership_enabled(config)
        rules = config.spend_limits
        self.active = self.ownership_on or bool(rules)
        self.store: RequestStore | None = open_store(config.redis_url) if self.active else None
        self._on_error = on_error
        self._failing = False
        self.ownership = (
            Ownership(self.store, config.request_ttl)
            if self.store is not None and self.ownership_on
            else None
        )
        self.budgets: Budgets | None = None
        if rules and self.store is not None:
            credential = config.require_credential()
            base = config.upstreams.get("api.fal.ai", PRICING_BASE)
            prices = Prices(price_table(config.prices_file), base, credential.authorization)
            self.budgets = Budgets(
                rules,
                prices,
                self.store,
                allow_unpriced=config.spend_allow_unpriced,
                ipv6_prefix=config.ipv6_prefix,
            )
        self._context = WatchContext(self.store, self.budgets, config.request_ttl, self._failed)

    async def aclose(self) -> None:
        if self.store is not None:
            await self.store.aclose()

    async def ready(self) -> bool:
        """Whether the store answers (``/readyz`` names it ``redis``)."""
        if self.store is None:
            return True
        try:
            return await self.store.ping()
        except StoreError:
            return False

    async def admit(
        self,
        websocket: bool,
        method: str,
        target: Target,
        app_id: str | None,
        identity: str | None,
        address: str,
        record: CallRecord,
    ) -> CallWatch | None:
        """Check one call before fal is called; the watch the relay must call, if any.

        Raises 404 (a request this caller does not own), 402 (a spent budget, an unknown
        price) or 503 (the store is down).
        """
        kind, request_id = classify(target, app_id, method)
        try:
            watch = await self._admit(
                websocket, kind, request_id, app_id, identity, address, record
            )
        except StoreError as exc:
            self._failed(exc)
            raise StoreUnavailable(headers={"retry-after": "1"}) from None
        if self._failing:
            self._recovered()
        return watch

    async def check_mint(self, aliases: Sequence[str], identity: str | None, address: str) -> None:
        """A token mint: refused (402) when a budget of an app it names is spent."""
        if self.budgets is None:
            return
        try:
            await self.budgets.check_aliases(aliases, identity, address)
        except StoreError as exc:
            self._failed(exc)
            raise StoreUnavailable(headers={"retry-after": "1"}) from None

    async def _admit(
        self,
        websocket: bool,
        kind: CallKind,
        request_id: str | None,
        app_id: str | None,
        identity: str | None,
        address: str,
        record: CallRecord,
    ) -> CallWatch | None:
        budgets = self.budgets
        if request_id is not None and app_id is not None:  # a read of a queued request
            stored = None
            if self.ownership is not None:
                stored = await self.ownership.check(request_id, app_id, identity)
            if budgets is None or kind is not CallKind.RESULT:
                return None
            if stored is None and self.store is not None:
                stored = await self.store.get_request(request_id)
            return ResultWatch(self._context, record, request_id, stored)
        if app_id is None or kind not in (CallKind.SUBMIT, CallKind.RUN):
            return None
        if websocket:
            if budgets is not None:
                await budgets.check(app_id, identity, address)
            return None
        hold = await budgets.hold(app_id, identity, address) if budgets is not None else None
        if kind is CallKind.SUBMIT and (self.ownership is not None or hold is not None):
            owner = Ownership.owner_of(identity)
            return SubmitWatch(self._context, record, owner, app_id, hold)
        return RunWatch(self._context, record, hold) if hold is not None else None

    def _failed(self, exc: BaseException) -> None:
        self._on_error()
        if not self._failing:
            self._failing = True
            logger.error(
                "request ownership and budget storage failed (%s); refusing calls with 503",
                type(exc).__name__,
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            logger.warning("request ownership and budget storage is back")
