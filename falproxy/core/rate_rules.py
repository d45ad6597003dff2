"""Rate-limit rules as values: ``RateLimit`` and the text form ``FALPROXY_RATE_LIMIT`` uses.

Pure, so the settings can hold and validate rules without the limiter (which needs its
storage, in memory or Redis) being built. A rule is ``"20/minute"`` plus, optionally, an
endpoint glob, who it counts (``identity``: the caller's identity, else its address;
``address``; ``global``: everyone together) and a cost per call.

Text form: rules separated by ``;``, each ``LIMIT [GLOB] [per=identity|address|global]
[cost=N]``, e.g. ``"60/minute; 5/minute fal-ai/flux-pro/** cost=2"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from falproxy.core.policy import compile_glob

Per = Literal["identity", "address", "global"]
PER_CHOICES: tuple[Per, ...] = ("identity", "address", "global")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One declarative limit: ``RateLimit("20/minute", "fal-ai/flux/**", cost=2)``."""

    limit: str
    endpoints: str = "**"  # endpoint glob, as in allowed_endpoints
    per: Per = "identity"
    cost: int = 1

    def __post_init__(self) -> None:
        import limits  # here, not at the top: see admission/ratelimit.py

        limits.parse(self.limit)  # ValueError for bad syntax
        compile_glob(self.endpoints)
        if self.per not in PER_CHOICES:
            raise ValueError(f"per must be one of {', '.join(PER_CHOICES)}")
        if isinstance(self.cost, bool) or self.cost < 1:
            raise ValueError("cost must be a positive integer")

    def __str__(self) -> str:
        return f"{self.limit} {self.endpoints} per={self.per} cost={self.cost}"


# The text form of one rule, shown whenever a rule cannot be read.
RULE_FORM = (
    "LIMIT [ENDPOINT_GLOB] [per=identity|address|global] [cost=N], "
    "e.g. '60/minute' or '5/minute fal-ai/flux-pro/** cost=2'"
)


Rule = TypeVar("Rule")


def parse_rules(
    text: str, kind: str, form: str, parse_one: Callable[[list[str]], Rule]
) -> tuple[Rule, ...]:
    """``;``-separated rules, each parsed from its words by ``parse_one``; a ValueError
    names the ``kind`` of rule, the bad rule and the expected ``form`` (rate and spend
    limits share this text form and its one-line errors)."""
    rules = []
    for chunk in text.split(";"):
        words = chunk.split()
        if not words:
            continue
        try:
            rules.append(parse_one(words))
        except ValueError as exc:
            # "60/minute, 5/minute x" is the most common slip: say how rules are separated.
            hint = "; rules are separated by ';', not ','" if "," in chunk else ""
            raise ValueError(
                f"bad {kind} {chunk.strip()!r}: {exc} (expected {form}){hint}"
            ) from None
    return tuple(rules)


def rule_words(words: list[str]) -> tuple[str, dict[str, str]]:
    """The words after a rule's limit: its one endpoint glob (``**`` when none) and its
    ``name=value`` options (rate and spend limits share this form)."""
    options: dict[str, str] = {}
    globs = []
    for word in words:
        name, sep, value = word.partition("=")
        if sep:
            options[name] = value
        else:
            globs.append(word)
    if len(globs) > 1:
        raise ValueError(f"one endpoint glob per rule, got {' '.join(globs)!r}")
    return (globs[0] if globs else "**"), options


def parse_rate_limits(text: str) -> tuple[RateLimit, ...]:
    """Rules in the text form above; ValueError names the bad rule and the expected form."""
    return parse_rules(text, "rate limit", RULE_FORM, _parse_rule)


def _parse_rule(words: list[str]) -> RateLimit:
    if "," in words[0]:
        raise ValueError(f"{words[0]!r} is not one limit")
    glob, options = rule_words(words[1:])
    try:
        cost = int(options.pop("cost", "1"))
    except ValueError:
        raise ValueError("cost must be a positive integer") from None
    per = options.pop("per", "identity")
    if options:
        raise ValueError(f"unknown option {next(iter(options))!r}")
    return RateLimit(words[0], glob, per, cost)  # type: ignore[arg-type]


def is_single_rate(text: str) -> bool:
    """Whether ``text`` is exactly one positive limit such as ``10/second``.

    ``limits.parse`` would silently take the first of several, so they are counted here.
    """
    import limits

    try:
        items = limits.parse_many(text)
    except ValueError:
        return False
    return len(items) == 1 and items[0].amount >= 1
