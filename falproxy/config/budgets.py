"""The ``budgets`` group of settings: request ownership and spend budgets, checked.

Kept apart from :mod:`falproxy.config.groups` so that the rules of issue 20 live in one
place: :func:`check_budgets` (the group's check, run when a config is built, so a bad
rule, an unreadable prices file or an unknown ownership mode stops start-up in one line),
reading the prices file, and whether ownership is on. How ``FALPROXY_SPEND_LIMIT`` is
written in each source is the ``SPEND_RULES`` kind of :mod:`falproxy.config.table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from falproxy.config.checks import has_authentication
from falproxy.core.errors import InvalidSetting
from falproxy.core.prices import PriceTable, parse_prices
from falproxy.core.spend_rules import SpendLimit

if TYPE_CHECKING:
    from falproxy.config.settings import ProxyConfig

OWNERSHIP_MODES: Final = ("auto", "on", "off")
# fal keeps queue results for a while; an owner record must outlive the polls of a request
# and a result fetched the next day (issue 20: at least 24 hours by default).
DEFAULT_REQUEST_TTL: Final = 24 * 3600.0
# A shorter record lifetime would 404 a result read the same afternoon.
MIN_REQUEST_TTL: Final = 60.0


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


def check_budgets(values: Mapping[str, Any]) -> None:
    """The ``budgets`` group's check: ownership mode, record lifetime, rules, prices file."""
    if values["request_ownership"] not in OWNERSHIP_MODES:
        raise InvalidSetting("request_ownership", f"must be one of {', '.join(OWNERSHIP_MODES)}")
    ttl = values["request_ttl"]
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < MIN_REQUEST_TTL:
        raise InvalidSetting("request_ttl", f"must be at least {MIN_REQUEST_TTL:g} seconds")
    if not all(isinstance(rule, SpendLimit) for rule in values["spend_limits"]):
        raise InvalidSetting("spend_limits", "must hold SpendLimit rules (or their text form)")
    if not isinstance(values["spend_allow_unpriced"], bool):
        raise InvalidSetting("spend_allow_unpriced", "must be True or False")
    if values["prices_file"] is not None:
        load_price_file(values["prices_file"])


def price_table(path: str | None) -> PriceTable:
    """The prices file's table (empty without one)."""
    return load_price_file(path) if path else PriceTable()


def ownership_enabled(config: ProxyConfig) -> bool:
    """Whether request ownership is on: ``on``, or ``auto`` with authentication configured."""
    mode = config.request_ownership
    return mode == "on" or (mode == "auto" and has_authentication(config))
