"""What a PromQL expression names: metrics, labels and label values, for checking them.

Not a PromQL parser (promtool is the grammar's judge, where it is installed): enough of the
language to list the selectors, matchers and ``by``/``without`` labels that a dashboard or
an alert rule uses, so a test can hold each against a real ``/metrics``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

# The functions and keywords the shipped dashboard and rules may use; any other bare word
# must be a metric name (so a misspelt function fails too).
KNOWN_WORDS: Final = frozenset(
    {
        "sum", "rate", "increase", "histogram_quantile", "max", "min", "avg", "count",
        "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool",
        "clamp_min", "label_values",
    }
)  # fmt: skip
_MATCHER: Final = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_SELECTOR: Final = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_GROUPING: Final = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_RANGE: Final = re.compile(r"\[[^\]]*\]")
_WORD: Final = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)")
_NUMBER: Final = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b")


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass
class Names:
    """Everything one expression names."""

    metrics: set[str] = field(default_factory=set)
    # (metric or None for a bare selector, matcher)
    matchers: list[tuple[str | None, Matcher]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)
    unknown_words: set[str] = field(default_factory=set)


def names(expr: str) -> Names:
    """The metrics, matchers, grouping labels and unknown bare words of ``expr``."""
    found = Names()
    text = _RANGE.sub(" ", expr)
    for match in _GROUPING.finditer(text):
        found.grouping |= {label.strip() for label in match.group(1).split(",") if label.strip()}
    text = _GROUPING.sub(" ", text)
    for match in _SELECTOR.finditer(text):
        metric = match.group(1)
        if metric:
            found.metrics.add(metric)
        for label, op, value in _MATCHER.findall(match.group(2)):
            found.matchers.append((metric, Matcher(label, op, value)))
    text = _SELECTOR.sub(" ", text)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)
    text = _NUMBER.sub(" ", text)
    for word in _WORD.findall(text):
        if word in KNOWN_WORDS:
            continue
        if word.startswith("falproxy_"):
            found.metrics.add(word)
        else:
            found.unknown_words.add(word)
    return found
