"""The settings of request ownership and spend budgets, and their validation.

Kept apart from :mod:`falproxy.config.groups` so that the rules of issue 20 live in one
place: the ``SPEND_RULES`` kind (how ``FALPROXY_SPEND_LIMIT`` is written in each source)
and the :class:`Budgets` group, which ``ProxyConfig`` builds on construction so that a bad
rule, an unreadable prices file or an unknown ownership mode stops start-up in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from falproxy.config.checks import has_authentication
from falproxy.config.table import Kind
from falproxy.core.errors import InvalidSetting
from falproxy.core.prices import PriceTable, parse_prices
from falproxy.core.spend_rules import SpendLimit, parse_spend_limits

if TYPE_CHECKING:
    from falproxy.config.settings import ProxyConfig

OWNERSHIP_MODES: Final = ("auto", "on", "off")
# fal keeps queue results for a while; an owner record must outlive the polls of a request
# and a result fetched the next day (issue 20: at least 24 hours by default).
DEFAULT_REQUEST_TTL: Final = 24 * 3600.0
# A shorter record lifetime would 404 a result read the same afternoon.
MIN_REQUEST_TTL: Final = 60.0


def _text_rules(raw: str) -> tuple[SpendLimit, ...]:
    try:
        return parse_spend_limits(raw)
    except ValueError as exc:
        raise ValueError(f"has a {exc}") from None


def _file_rules(value: Any) -> tuple[SpendLimit, ...]:
    if isinstance(value, str):
        return parse_spend_limits(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of rules (or one string with rules separated by ';')")
    return tuple(rule for item in value for rule in parse_spend_limits(item))


def _normalise_rules(name: str, value: Any) -> tuple[SpendLimit, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise InvalidSetting(name, "must be a list of SpendLimit rules")
    rules: list[Any] = []
    for item in value:
        if isinstance(item, str):
            try:
                rules.extend(parse_spend_limits(item))
            except ValueError as exc:
                raise InvalidSetting(name, str(exc)) from None
        else:
            rules.append(item)
    return tuple(rules)


SPEND_RULES = Kind("spend-limit rules", _text_rules, _file_rules, _normalise_rules)


def load_price_file(path: str) -> PriceTable:
    """The table in ``path`` (JSON or TOML by extension); ``InvalidSetting`` otherwise."""
    suffix = Path(path).suffix.lower()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InvalidSetting("prices_file", f"names no readable file: {path!r}") from None
    try:
        return parse_prices(text, suffix)
    except ValueError as exc:
        raise InvalidSetting("prices_file", f"{path!r} {exc}") from None


@dataclass(frozen=True, slots=True)
class Budgets:
    """Who may read a queued request, and how much money each caller may spend."""

    request_ownership: str
    request_ttl: float
    spend_limits: tuple[SpendLimit, ...]
    prices_file: str | None
    spend_allow_unpriced: bool

    def __post_init__(self) -> None:
        if self.request_ownership not in OWNERSHIP_MODES:
            raise InvalidSetting(
                "request_ownership", f"must be one of {', '.join(OWNERSHIP_MODES)}"
            )
        ttl = self.request_ttl
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < MIN_REQUEST_TTL:
            raise InvalidSetting("request_ttl", f"must be at least {MIN_REQUEST_TTL:g} seconds")
        if not all(isinstance(rule, SpendLimit) for rule in self.spend_limits):
            raise InvalidSetting("spend_limits", "must hold SpendLimit rules (or their text form)")
        if not isinstance(self.spend_allow_unpriced, bool):
            raise InvalidSetting("spend_allow_unpriced", "must be True or False")
        if self.prices_file is not None:
            load_price_file(self.prices_file)

    def prices(self) -> PriceTable:
        """The prices file's table (empty without one)."""
        return load_price_file(self.prices_file) if self.prices_file else PriceTable()


def ownership_enabled(config: ProxyConfig) -> bool:
    """Whether request ownership is on: ``on``, or ``auto`` with authentication configured."""
    mode = config.request_ownership
    return mode == "on" or (mode == "auto" and has_authentication(config))
