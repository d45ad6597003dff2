"""Unit prices for spend budgets: the ``FALPROXY_PRICES`` file first, then fal's pricing API.

``GET https://api.fal.ai/v1/models/pricing?endpoint_id=<id>`` with the proxy's own key
answers ``{"prices": [{"endpoint_id", "unit_price", "unit", "currency"}, ...]}``
(docs/fal-protocol.md §17, assumed). ``api.fal.ai`` is a host the proxy calls for itself:
no client target may name it (412), and ``--upstream api.fal.ai=URL`` maps it like the
other fal hosts (the fake serves it under ``/api``).

Prices from the API are cached per endpoint for :data:`PRICE_TTL_SECONDS` (an hour), and
an endpoint the API could not price is asked again after :data:`RETRY_SECONDS`, so an
outage of the API costs one upstream call per endpoint per minute, not one per call.
Only USD prices are used; another currency counts as unknown.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from falproxy.core.prices import PriceTable

logger = logging.getLogger("falproxy.admission.pricing")

PRICING_HOST: Final = "api.fal.ai"
PRICING_PATH: Final = "/v1/models/pricing"
PRICE_TTL_SECONDS: Final = 3600.0
RETRY_SECONDS: Final = 60.0
# Endpoints whose price is remembered; past it the oldest answer is forgotten first, so
# callers naming ever new endpoint ids cannot grow the cache without bound.
MAX_CACHED_PRICES: Final = 4096


# GET url with headers -> (status, body); raises on any failure. Given by the relay layer
# (relay/pricing_client.py), which owns the upstream client; admission only decides.
Fetch = Callable[[str, list[tuple[bytes, bytes]]], Awaitable[tuple[int, bytes]]]


class Prices:
    """Where a unit price comes from: the file table, else the API (cached)."""

    def __init__(self, table: PriceTable, base_url: str, authorization: bytes) -> None:
        self._table = table
        self._fetch: Fetch | None = None
        self._url = f"{base_url.rstrip('/')}{PRICING_PATH}?endpoint_id="
        self._authorization = authorization
        self._cache: dict[str, tuple[float | None, float]] = {}

    async def price_for(self, endpoint_id: str) -> float | None:
        """USD per unit of ``endpoint_id``, or None when nobody can say."""
        price = self._table.price_for(endpoint_id)
        if price is not None or self._fetch is None:
            return price
        cached = self._cache.get(endpoint_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        price = await self._ask(endpoint_id)
        ttl = PRICE_TTL_SECONDS if price is not None else RETRY_SECONDS
        self._cache.pop(endpoint_id, None)
        self._cache[endpoint_id] = (price, now + ttl)
        if len(self._cache) > MAX_CACHED_PRICES:
            del self._cache[next(iter(self._cache))]
        return price

    def use(self, fetch: Fetch) -> None:
        """Ask fal's pricing API through ``fetch`` for endpoints the file does not price."""
        self._fetch = fetch

    async def _ask(self, endpoint_id: str) -> float | None:
        assert self._fetch is not None
        url = self._url + quote(endpoint_id, safe="/")
        headers = [(b"authorization", self._authorization), (b"accept", b"application/json")]
        try:
            status, body = await self._fetch(url, headers)
        except Exception as exc:  # any failure: the price is unknown, said once per endpoint
            logger.warning("fal's pricing API failed for %s: %s", endpoint_id, type(exc).__name__)
            return None
        if status != 200:
            logger.warning("fal's pricing API answered %d for %s", status, endpoint_id)
            return None
        return _price_in(body, endpoint_id)


def _price_in(body: bytes, endpoint_id: str) -> float | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    entries = data.get("prices") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("endpoint_id") != endpoint_id:
            continue
        price = entry.get("unit_price")
        currency = entry.get("currency", "USD")
        if isinstance(price, int | float) and not isinstance(price, bool) and price >= 0:
            return float(price) if currency == "USD" else None
    return None
