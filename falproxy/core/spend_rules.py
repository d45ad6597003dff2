"""Spend limits as values: ``SpendLimit`` and the text form ``FALPROXY_SPEND_LIMIT`` uses.

Pure, like :mod:`falproxy.core.rate_rules`: the settings hold and validate rules without
the store that counts them. A rule is an amount in USD per period, optionally for the apps
an endpoint glob covers, counted per identity (else per address), per address, or for
everyone together.

Text form: rules separated by ``;``, each ``AMOUNT/PERIOD [ENDPOINT_GLOB]
[per=identity|address|global]``, e.g. ``"0.50/day fal-ai/flux/** per=identity;
200/month per=global"``. Periods are ``hour``, ``day``, ``week`` and ``month``.

Windows are **fixed** and calendar-aligned in UTC (an hour from :00, a day from midnight,
a week from Monday 00:00, a month from the 1st), so "today's spend" means the same on
every replica and the reset time is one timestamp, not a moving tail.

Money is counted in whole micro-dollars (10^-6 USD): exact sums in Redis (``HINCRBY``)
and in memory, where floats would drift.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from falproxy.core.policy import compile_glob
from falproxy.core.rate_rules import PER_CHOICES, Per, parse_rules, rule_words

Period = Literal["hour", "day", "week", "month"]
PERIODS: Final[tuple[Period, ...]] = ("hour", "day", "week", "month")
MICRO: Final = 1_000_000  # micro-dollars per dollar
# The text form of one rule, shown whenever a rule cannot be read.
RULE_FORM: Final = (
    "AMOUNT/PERIOD [ENDPOINT_GLOB] [per=identity|address|global], periods hour, day, week, "
    "month, e.g. '0.50/day fal-ai/flux/**' or '200/month per=global'"
)


def to_micro(usd: float) -> int:
    """USD to whole micro-dollars, rounded up (a fraction of a micro-dollar still counts)."""
    return math.ceil(round(usd * MICRO, 6))


def to_usd(micro: int) -> float:
    return round(micro / MICRO, 6)


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """One budget: ``SpendLimit(0.5, "day", "fal-ai/flux/**")``; amount in USD."""

    amount: float
    period: Period
    endpoints: str = "**"  # endpoint glob, as in allowed_endpoints
    per: Per = "identity"

    def __post_init__(self) -> None:
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ValueError("the amount must be a number of USD")
        if not math.isfinite(amount) or amount <= 0:
            raise ValueError("the amount must be a positive number of USD")
        if self.period not in PERIODS:
            raise ValueError(f"the period must be one of {', '.join(PERIODS)}")
        compile_glob(self.endpoints)
        if self.per not in PER_CHOICES:
            raise ValueError(f"per must be one of {', '.join(PER_CHOICES)}")

    @property
    def limit_micro(self) -> int:
        return round(self.amount * MICRO)

    def __str__(self) -> str:
        return f"{self.amount:g}/{self.period} {self.endpoints} per={self.per}"


def parse_spend_limits(text: str) -> tuple[SpendLimit, ...]:
    """Rules in the text form above; ValueError names the bad rule and the expected form."""
    return parse_rules(text, "spend limit", RULE_FORM, _parse_rule)


def _parse_rule(words: list[str]) -> SpendLimit:
    amount_text, slash, period = words[0].partition("/")
    if not slash:
        raise ValueError(f"{words[0]!r} is not AMOUNT/PERIOD")
    try:
        amount = float(amount_text.removeprefix("$"))
    except ValueError:
        raise ValueError(f"{amount_text!r} is not an amount of USD") from None
    glob, options = rule_words(words[1:])
    per = options.pop("per", "identity")
    if options:
        raise ValueError(f"unknown option {next(iter(options))!r}")
    return SpendLimit(amount, period, glob, per)  # type: ignore[arg-type]


def window(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The fixed UTC window of ``period`` that holds ``now``: (start, end)."""
    now = now.astimezone(UTC)
    if period == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)
