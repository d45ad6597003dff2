"""Spend budgets in money: refuse new work once a rule is spent, charge what fal reports.

A call that starts work on an app a rule covers (a run, a stream, a queue submit, a
realtime socket, a token mint for that app) is admitted while, for every rule that covers
it, ``spent + held < limit`` in the rule's current window (fixed, UTC; core/spend_rules.py).
A refusal is 402 JSON naming the rule, what was spent and when the window resets, with
``Retry-After``. Reads of existing requests (status, result, cancel) are never refused.

**Holds bound the overshoot.** An admitted run or submit *holds* an estimate on each of
its counters: the app's last cost seen by this process, at least one unit's price. When
the cost is known (``x-fal-billable-units`` x unit price) the hold is replaced by it: a
sync run when its response head arrives, a queued request when its result is first read
(once, however often it is read). A 2xx answer without units is charged its estimate; an
error answer releases the hold. So a window can end above its limit by at most the cost
of the calls in flight when it filled, minus their holds. A queued request whose result is
never read keeps its hold, as its charge, until the window's counter expires.

Sockets and token mints are checked, never held or charged: realtime frames carry no
billing header (docs/budgets.md says what a budget does not cover).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from falproxy.admission.pricing import Prices
from falproxy.admission.ratelimit import subject
from falproxy.admission.request_store import (
    COUNTER_GRACE_SECONDS,
    KEY_PREFIX,
    Counter,
    RequestStore,
    Spent,
    Tally,
)
from falproxy.core.client_address import budget_key
from falproxy.core.errors import BudgetSpent, PaymentRequired
from falproxy.core.policy import alias_matcher, compile_glob
from falproxy.core.spend_rules import SpendLimit, to_micro, to_usd, window


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: SpendLimit
    matches: Callable[[str], object]
    names_alias: Callable[[str], bool]
    label: str


@dataclass(slots=True)
class Hold:
    """An estimate held for one admitted call, until its cost replaces it."""

    endpoint: str
    price: float | None  # USD per unit; None when admitted unpriced
    amount: int  # micro-dollars held on each counter
    counters: tuple[str, ...]
    who: str  # the usage tally's subject
    settled: bool = False


class Budgets:
    """The spend rules of one proxy, their prices and their counters."""

    def __init__(
        self,
        rules: Sequence[SpendLimit],
        prices: Prices,
        store: RequestStore,
        *,
        allow_unpriced: bool,
        ipv6_prefix: int,
    ) -> None:
        self._rules = tuple(
            _Rule(r, compile_glob(r.endpoints).fullmatch, alias_matcher(r.endpoints), str(r))
            for r in rules
        )
        self.prices = prices
        self._store = store
        self._allow_unpriced = allow_unpriced
        self._ipv6_prefix = ipv6_prefix
        self._last_cost: dict[str, int] = {}  # endpoint -> micro-dollars, this process

    def covers(self, endpoint: str) -> bool:
        return any(rule.matches(endpoint) for rule in self._rules)

    async def hold(self, endpoint: str, identity: str | None, address: str) -> Hold | None:
        """Admit new work on ``endpoint`` and hold its estimate; 402 when a rule is spent."""
        rules = [rule for rule in self._rules if rule.matches(endpoint)]
        if not rules:
            return None
        price = await self.prices.price_for(endpoint)
        if price is None and not self._allow_unpriced:
            raise PaymentRequired(
                f"The unit price of {endpoint} is unknown (no FALPROXY_PRICES entry and fal's "
                "pricing API gave none), so its spend limit cannot be kept"
            )
        estimate = 0 if price is None else max(self._last_cost.get(endpoint, 0), to_micro(price), 1)
        now = datetime.now(UTC)
        counters = [self._counter(rule, identity, address, now) for rule in rules]
        spent = await self._store.hold(counters, estimate)
        if spent is not None:
            raise _refusal(rules[spent.index], spent, now)
        who = subject("identity", identity, self._address(address))
        return Hold(endpoint, price, estimate, tuple(c.key for c in counters), who)

    async def check_aliases(
        self, aliases: Sequence[str], identity: str | None, address: str
    ) -> None:
        """A token mint for ``aliases``: refused when a rule of an app they name is spent."""
        rules = [rule for rule in self._rules if any(map(rule.names_alias, aliases))]
        await self._check(rules, identity, address)

    async def check(self, endpoint: str, identity: str | None, address: str) -> None:
        """A realtime socket to ``endpoint``: refused when a rule covering it is spent."""
        await self._check([r for r in self._rules if r.matches(endpoint)], identity, address)

    async def settle(
        self,
        hold: Hold,
        units: float | None,
        *,
        ok: bool,
        once: str | None = None,
        once_ttl: float = 0.0,
    ) -> int | None:
        """Replace ``hold`` by the call's cost; the cost in micro-dollars, None if nothing.

        ``units`` from ``x-fal-billable-units``; without them a successful call (``ok``)
        is charged its estimate and a failed one nothing. ``once`` (a request id) makes the
        charge happen only the first time, across replicas.
        """
        if hold.settled:
            return None
        hold.settled = True
        if hold.price is None:
            cost = 0  # admitted unpriced (FALPROXY_SPEND_ALLOW_UNPRICED): nothing to charge
        elif units is not None:
            cost = to_micro(units * hold.price)
            self._last_cost[hold.endpoint] = cost
        else:
            cost = hold.amount if ok else 0
        tallies = _tallies(hold, datetime.now(UTC)) if cost else ()
        charged = await self._store.settle(
            hold.counters, hold.amount, cost, tallies, once=once, once_ttl=once_ttl
        )
        return cost if charged else None

    async def _check(self, rules: list[_Rule], identity: str | None, address: str) -> None:
        if not rules:
            return
        now = datetime.now(UTC)
        counters = [self._counter(rule, identity, address, now) for rule in rules]
        spent = await self._store.hold(counters, 0)
        if spent is not None:
            raise _refusal(rules[spent.index], spent, now)

    def _counter(self, rule: _Rule, identity: str | None, address: str, now: datetime) -> Counter:
        start, end = window(rule.rule.period, now)
        who = subject(rule.rule.per, identity, self._address(address))
        key = f"{KEY_PREFIX}spend:{rule.label}|{start:%Y-%m-%dT%H}|{who}"
        return Counter(key, rule.rule.limit_micro, int(end.timestamp()) + COUNTER_GRACE_SECONDS)

    def _address(self, address: str) -> str:
        return budget_key(address, self._ipv6_prefix)


def _tallies(hold: Hold, now: datetime) -> tuple[Tally, ...]:
    day_start, day_end = window("day", now)
    month_start, month_end = window("month", now)
    grace = COUNTER_GRACE_SECONDS
    return (
        Tally(
            f"{KEY_PREFIX}usage:day:{day_start:%Y-%m-%d}|{hold.who}",
            hold.endpoint,
            int(day_end.timestamp()) + grace,
        ),
        Tally(
            f"{KEY_PREFIX}usage:month:{month_start:%Y-%m}|{hold.who}",
            hold.endpoint,
            int(month_end.timestamp()) + grace,
        ),
    )


def _refusal(rule: _Rule, spent: Spent, now: datetime) -> BudgetSpent:
    _, end = window(rule.rule.period, now)
    resets = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    fields: dict[str, object] = {
        "rule": rule.label,
        "spent_usd": to_usd(spent.spent),
        "held_usd": to_usd(spent.held),
        "limit_usd": rule.rule.amount,
        "resets_at": resets,
    }
    detail = (
        f"Spend limit reached: {rule.label} (spent {to_usd(spent.spent):g} USD"
        f"{f', {to_usd(spent.held):g} held by calls in flight' if spent.held > 0 else ''}"
        f"); it resets at {resets}"
    )
    retry = max(1, math.ceil((end - now).total_seconds()))
    return BudgetSpent(detail, fields=fields, retry_after=retry)
