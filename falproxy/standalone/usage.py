"""``falproxy usage``: who spent what in the current windows, read from the shared store.

Reads the Redis named by ``FALPROXY_REDIS_URL`` (found like ``serve`` finds it: the
environment, or ``--config``), the same keys the proxies write
(:mod:`falproxy.admission.request_store`): the spend per caller and endpoint for today and
this month (UTC), and each budget counter of its current window (spent, held by calls in
flight, limit, reset time). A memory store lives inside one serving process, so without
Redis there is nothing to read from outside and the command says so.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from falproxy.admission.request_store import KEY_PREFIX, StoreError
from falproxy.admission.request_store_redis import RedisStore
from falproxy.core.errors import ConfigError
from falproxy.core.spend_rules import parse_spend_limits, to_usd, window

_USAGE = f"{KEY_PREFIX}usage:"
_SPEND = f"{KEY_PREFIX}spend:"


@dataclass(frozen=True, slots=True)
class Report:
    day: str
    month: str
    usage: list[dict[str, Any]]
    budgets: list[dict[str, Any]]

    def as_json(self) -> str:
        document = {"day": self.day, "month": self.month}
        return json.dumps({**document, "usage": self.usage, "budgets": self.budgets}, indent=2)

    def as_text(self) -> str:
        lines = [f"spend in USD, today ({self.day} UTC) and this month ({self.month})"]
        rows: list[tuple[str, ...]] = [("who", "app", "today", "month")]
        rows += [
            (u["who"], u["app"], f"{u['today_usd']:.6f}", f"{u['month_usd']:.6f}")
            for u in self.usage
        ]
        lines += _table(rows) if self.usage else ["(nothing spent)"]
        lines.append("")
        lines.append("budgets (current windows)")
        rows = [("rule", "who", "spent", "held", "limit", "resets")]
        rows += [
            (
                b["rule"],
                b["who"],
                f"{b['spent_usd']:.6f}",
                f"{b['held_usd']:.6f}",
                f"{b['limit_usd']:g}",
                b["resets_at"],
            )
            for b in self.budgets
        ]
        lines += _table(rows) if self.budgets else ["(no budget counted yet)"]
        return "\n".join(lines)


def usage_report(redis_url: str | None, now: datetime | None = None) -> Report:
    """The report, or ``ConfigError`` (no Redis, or Redis unreachable) in one line."""
    if not redis_url:
        raise ConfigError(
            "falproxy usage reads FALPROXY_REDIS_URL: without Redis, spend is counted in "
            "the serving process's memory and only its /metrics show it"
        )
    try:
        snapshot = asyncio.run(_snapshot(redis_url))
    except StoreError as exc:
        raise ConfigError(f"FALPROXY_REDIS_URL could not be read ({exc})") from None
    return build_report(snapshot, now or datetime.now(UTC))


async def _snapshot(redis_url: str) -> dict[str, dict[str, int]]:
    store = RedisStore(redis_url)
    try:
        if not await store.ping():
            raise StoreError("no answer")
        try:
            return await store.snapshot()
        except Exception as exc:
            raise StoreError(type(exc).__name__) from None
    finally:
        await store.aclose()


def build_report(snapshot: dict[str, dict[str, int]], now: datetime) -> Report:
    day = f"{window('day', now)[0]:%Y-%m-%d}"
    month = f"{window('month', now)[0]:%Y-%m}"
    spent: dict[tuple[str, str], dict[str, int]] = {}
    budgets = []
    for key, fields in sorted(snapshot.items()):
        if key.startswith(_USAGE):
            period, _, rest = key[len(_USAGE) :].partition(":")
            when, _, who = rest.partition("|")
            if (period, when) not in (("day", day), ("month", month)):
                continue
            for app, micro in fields.items():
                spent.setdefault((who, app), {}).setdefault(period, 0)
                spent[(who, app)][period] += micro
        elif key.startswith(_SPEND):
            entry = _budget(key[len(_SPEND) :], fields, now)
            if entry is not None:
                budgets.append(entry)
    usage = [
        {
            "who": who,
            "app": app,
            "today_usd": to_usd(totals.get("day", 0)),
            "month_usd": to_usd(totals.get("month", 0)),
        }
        for (who, app), totals in sorted(spent.items())
    ]
    return Report(day, month, usage, budgets)


def _budget(key: str, fields: dict[str, int], now: datetime) -> dict[str, Any] | None:
    label, _, rest = key.partition("|")
    started, _, who = rest.partition("|")
    try:
        (rule,) = parse_spend_limits(label)
    except ValueError:
        return None
    start, end = window(rule.period, now)
    if f"{start:%Y-%m-%dT%H}" != started:
        return None  # a past window, kept a day for late settlements
    return {
        "rule": label,
        "who": who,
        "spent_usd": to_usd(fields.get("spent", 0)),
        "held_usd": to_usd(max(0, fields.get("held", 0))),
        "limit_usd": rule.amount,
        "resets_at": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
