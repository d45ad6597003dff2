"""Unit prices of fal endpoints: the ``FALPROXY_PRICES`` table, parsed and matched.

The file's top level maps endpoint globs (the syntax of ``allowed_endpoints``) to the
price of one billable unit in USD, e.g. ``{"fal-ai/flux/**": 0.04}``; JSON or TOML, told
apart by the file's extension. The first glob, in the file's order, that matches an
endpoint id gives its price. Pure: the file is read by the configuration
(:mod:`falproxy.config.budgets`), prices from fal's pricing API are fetched by
:mod:`falproxy.admission.pricing`; this table wins over the API (offline use,
negotiated prices).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping

from falproxy.core.policy import compile_glob

PRICE_FILE_SUFFIXES = (".json", ".toml")


class PriceTable:
    """Endpoint globs and their unit prices, matched in order."""

    __slots__ = ("_compiled", "entries")

    def __init__(self, entries: tuple[tuple[str, float], ...] = ()) -> None:
        self.entries = entries
        self._compiled = tuple((compile_glob(glob), price) for glob, price in entries)

    def price_for(self, endpoint_id: str) -> float | None:
        """The unit price of ``endpoint_id``, or None when no glob matches it."""
        for pattern, price in self._compiled:
            if pattern.fullmatch(endpoint_id):
                return price
        return None

    def __bool__(self) -> bool:
        return bool(self.entries)


def parse_prices(text: str, suffix: str) -> PriceTable:
    """A table from a file's text; ValueError says what is wrong (never echoes the file)."""
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("is not valid JSON") from None
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise ValueError("is not valid TOML") from None
    else:
        raise ValueError(f"must end in {' or '.join(PRICE_FILE_SUFFIXES)}")
    if not isinstance(data, Mapping):
        raise ValueError('must map endpoint globs to USD per unit, e.g. {"fal-ai/flux/**": 0.04}')
    entries = []
    for glob, price in data.items():
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise ValueError(f"gives {glob!r} a price that is not a number")
        if not math.isfinite(price) or price < 0:
            raise ValueError(f"gives {glob!r} a price that is not a non-negative number")
        try:
            compile_glob(str(glob))
        except ValueError as exc:
            raise ValueError(f"has an invalid glob {glob!r}: {exc}") from None
        entries.append((str(glob), float(price)))
    return PriceTable(tuple(entries))
