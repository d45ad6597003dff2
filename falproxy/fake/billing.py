"""Billing in the fake: ``x-fal-billable-units`` on answers, and fal's pricing API.

fal reports what a call costs in ``x-fal-billable-units`` on a sync run's answer and on a
queued request's result (docs/fal-protocol.md §17); the fake sends it on those two answers
when they succeed, with a unit count per app (``[ns/]owner/alias``, default 1).
``api.fal.ai`` is served under ``/api``: ``GET /api/v1/models/pricing?endpoint_id=<id>``
answers ``{"prices": [{"endpoint_id", "unit_price", "unit", "currency"}], ...}`` with a
price per endpoint (default :data:`DEFAULT_UNIT_PRICE`; an endpoint set to ``null`` is
unknown: an empty list). Tests set both with ``POST /__fake__/billing``
``{"units": {"fal-ai/flux": 3}, "prices": {"fal-ai/flux/dev": 0.025}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .errors import detail

UNITS_HEADER: Final = "x-fal-billable-units"
DEFAULT_UNITS: Final = 1.0
DEFAULT_UNIT_PRICE: Final = 0.01


@dataclass
class Billing:
    """Units per app and prices per endpoint, and how often the pricing API was asked."""

    units: dict[str, float | None] = field(default_factory=dict)
    prices: dict[str, float | None] = field(default_factory=dict)
    pricing_calls: int = 0

    def units_header(self, app_id: str) -> dict[str, str]:
        """The header a successful answer of ``app_id`` carries (none when set to null)."""
        units = self.units.get(app_id, DEFAULT_UNITS)
        return {} if units is None else {UNITS_HEADER: f"{units:g}"}

    def clear(self) -> None:
        self.units.clear()
        self.prices.clear()
        self.pricing_calls = 0


class PricingEndpoints:
    """``/api`` (fal's platform API, pricing only) and ``/__fake__/billing``."""

    def __init__(self, billing: Billing, authorize: object) -> None:
        self.billing = billing
        self._authorize = authorize

    def api_routes(self) -> list[BaseRoute]:
        return [Route("/v1/models/pricing", self.pricing, methods=["GET"])]

    def control_routes(self) -> list[BaseRoute]:
        return [
            Route("/__fake__/billing", self.set_billing, methods=["POST"]),
            Route("/__fake__/billing", self.get_billing, methods=["GET"]),
        ]

    async def pricing(self, request: Request) -> Response:
        self._authorize(request, None, tokens=False)  # type: ignore[operator]
        self.billing.pricing_calls += 1
        ids = request.query_params.getlist("endpoint_id")
        prices = []
        for endpoint_id in ids:
            price = self.billing.prices.get(endpoint_id, DEFAULT_UNIT_PRICE)
            if price is not None:
                entry = {"endpoint_id": endpoint_id, "unit_price": price}
                prices.append({**entry, "unit": "image", "currency": "USD"})
        return JSONResponse({"prices": prices, "next_cursor": None, "has_more": False})

    async def set_billing(self, request: Request) -> Response:
        try:
            data = await request.json()
        except ValueError:
            raise detail(400, "Body must be JSON") from None
        if not isinstance(data, dict):
            raise detail(400, "Body must be a JSON object")
        for name in ("units", "prices"):
            values = data.get(name, {})
            if not isinstance(values, dict):
                raise detail(400, f"{name} must map ids to numbers or null")
            getattr(self.billing, name).update(values)
        return await self.get_billing(request)

    async def get_billing(self, request: Request) -> Response:
        billing = self.billing
        answer = {"units": billing.units, "prices": billing.prices}
        return JSONResponse({**answer, "pricing_calls": billing.pricing_calls})
