"""Text forms of settings: how an environment variable (or a TOML string) becomes a value.

Each parser takes the raw text and returns the value, or raises ``ValueError`` with the
problem only ("must be a number of seconds"); the loader puts the name the user wrote in
front of it (``FALPROXY_BODY_TIMEOUT must be ...``), so one parser serves every source.
"""

from __future__ import annotations

import math

from falproxy.core.rate_rules import RateLimit, parse_rate_limits
from falproxy.core.redact import mask_url

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def text(raw: str) -> str:
    """A string; surrounding whitespace (a newline from ``echo``) dropped."""
    return raw.strip()


def seconds(raw: str) -> float:
    """A duration in seconds, such as ``30`` or ``2.5``."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number of seconds")
    return value


def integer(raw: str) -> int:
    """A whole number, such as ``1048576``."""
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("must be an integer") from None


def boolean(raw: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("must be true or false")


def words(raw: str) -> tuple[str, ...]:
    """A comma-separated list; blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def upstream_pairs(raw: str | list[str] | tuple[str, ...]) -> dict[str, str]:
    """``HOST=BASE_URL`` pairs, comma-separated (or already split, from the CLI)."""
    items = words(raw) if isinstance(raw, str) else tuple(raw)
    mapping: dict[str, str] = {}
    for item in items:
        host, sep, base = item.partition("=")
        if not sep or not host.strip() or not base.strip():
            raise ValueError(f"must be HOST=BASE_URL pairs, got {mask_url(item)!r}")
        mapping[host.strip().lower()] = base.strip()
    return mapping


def rate_rules(raw: str) -> tuple[RateLimit, ...]:
    """Rules separated by ``;`` (see :func:`falproxy.admission.ratelimit.parse_rate_limits`)."""
    try:
        return parse_rate_limits(raw)
    except ValueError as exc:
        raise ValueError(f"has a {exc}") from None
