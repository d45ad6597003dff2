"""What a rate budget is keyed by and what counts against it, over real sockets.

Issue 12 items 7 and 10: a token mint counts against every rule that would count a call to
an app the token names (``1/minute fal-ai/flux/**`` used up means no ``flux`` token either,
and the other way round), on the ASGI app and the WSGI pipeline; anonymous IPv6 callers
share one budget per ``/64`` (``ipv6_prefix``), seen through a trusted proxy's
``X-Forwarded-For`` since loopback offers one IPv6 address only.
"""

from __future__ import annotations

import httpx
import pytest

from falproxy import RateLimit
from tests.support.in_process import Front, asgi
from tests.support.live import ROUTE

FLUX = "https://fal.run/fal-ai/flux/dev"
TOKENS = "https://rest.fal.ai/tokens/"
FLUX_LIMIT = (RateLimit("1/minute", "fal-ai/flux/**"),)


def run(client: httpx.Client, target: str = FLUX, **headers: str) -> int:
    response = client.post(
        ROUTE, headers={"x-fal-target-url": target, **headers}, json={"prompt": "a fox"}
    )
    return response.status_code


def mint(client: httpx.Client, *apps: str) -> int:
    response = client.post(
        ROUTE, headers={"x-fal-target-url": TOKENS}, json={"allowed_apps": list(apps)}
    )
    return response.status_code


def test_mints_count_against_the_rules_of_the_apps_they_name(front: Front, fake_url: str) -> None:
    with front(fake_url, rate_limits=FLUX_LIMIT) as url, httpx.Client(base_url=url) as client:
        assert run(client) == 200
        assert [mint(client, "flux") for _ in range(5)] == [429] * 5
        assert mint(client, "sdxl", "flux") == 429  # one named app over its limit is enough
        assert mint(client, "sdxl") == 200  # no rule counts sdxl
        assert mint(client, "flux-pro") == 200  # a longer alias is another app


def test_a_mint_uses_up_the_budget_of_the_apps_it_names(front: Front, fake_url: str) -> None:
    with front(fake_url, rate_limits=FLUX_LIMIT) as url, httpx.Client(base_url=url) as client:
        assert mint(client, "flux") == 200
        assert run(client) == 429


def test_a_mint_counts_once_per_rule_however_many_apps_it_names(fake_url: str) -> None:
    limits = (RateLimit("2/minute", "fal-ai/**"),)
    with asgi(fake_url, rate_limits=limits) as url, httpx.Client(base_url=url) as client:
        assert mint(client, "flux", "sdxl", "lcm") == 200
        assert run(client) == 200
        assert run(client) == 429


# --- IPv6 -------------------------------------------------------------------------------------


def from_address(client: httpx.Client, address: str) -> int:
    return run(client, **{"x-forwarded-for": address})


@pytest.mark.parametrize(
    ("prefix", "same_64"),
    [(64, 429), (48, 429), (128, 200)],
    ids=["default /64", "a wider /48", "per address (/128)"],
)
def test_anonymous_ipv6_callers_share_a_budget_per_prefix(
    fake_url: str, prefix: int, same_64: int
) -> None:
    settings = {
        "rate_limits": (RateLimit("1/minute", per="address"),),
        "trusted_proxies": ("127.0.0.1",),
        "ipv6_prefix": prefix,
    }
    with asgi(fake_url, **settings) as url, httpx.Client(base_url=url) as client:
        assert from_address(client, "2001:db8:1:2::1") == 200
        assert from_address(client, "2001:db8:1:2:ffff:ffff:ffff:fffe") == same_64
        other_48 = from_address(client, "2001:db8:2::1")  # outside even the /48
        assert other_48 == 200
        assert from_address(client, "203.0.113.1") == 200  # IPv4 untouched
        assert from_address(client, "203.0.113.1") == 429
