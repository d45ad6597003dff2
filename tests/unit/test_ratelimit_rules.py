"""What the limiter counts a call against, and under which key (in-memory storage).

Issue 12: a token mint counts against every rule that could count an app it names, once
per rule; anonymous IPv6 callers are counted per ``ipv6_prefix`` network.
"""

from __future__ import annotations

import pytest

from falproxy.admission.ratelimit import RateLimit, RateLimited, RateLimiter


async def admitted(limiter: RateLimiter, app_id: str | None, address: str, *apps: str) -> bool:
    """A call to ``app_id``, or with ``apps`` a mint: admitted, then policed and counted."""
    try:
        await limiter.check(app_id, None, address)
        if apps:
            await limiter.check_mint(apps, None, address)
    except RateLimited:
        return False
    return True


async def test_a_mint_is_counted_by_the_rules_of_the_apps_it_names() -> None:
    limiter = RateLimiter([RateLimit("1/minute", "fal-ai/flux/**")])
    assert await admitted(limiter, None, "192.0.2.1", "sdxl")  # not a flux app: not counted
    assert await admitted(limiter, None, "192.0.2.1", "flux")
    assert not await admitted(limiter, "fal-ai/flux/dev", "192.0.2.1")
    assert not await admitted(limiter, None, "192.0.2.1", "sdxl", "flux")


async def test_a_mint_naming_several_apps_of_one_rule_costs_one_call() -> None:
    limiter = RateLimiter([RateLimit("2/minute", "fal-ai/**")])
    assert await admitted(limiter, None, "192.0.2.1", "flux", "sdxl", "lcm")
    assert await admitted(limiter, "fal-ai/flux/dev", "192.0.2.1")
    assert not await admitted(limiter, "fal-ai/flux/dev", "192.0.2.1")


async def test_catch_all_rules_count_mints_as_before() -> None:
    limiter = RateLimiter([RateLimit("1/minute")])
    assert await admitted(limiter, None, "192.0.2.1", "flux")
    assert not await admitted(limiter, None, "192.0.2.1", "sdxl")


@pytest.mark.parametrize(("prefix", "shared"), [(64, True), (56, True), (128, False)])
async def test_anonymous_ipv6_budgets_are_per_prefix(prefix: int, shared: bool) -> None:
    limiter = RateLimiter([RateLimit("1/minute", per="address")], ipv6_prefix=prefix)
    assert await admitted(limiter, "a/b", "2001:db8:0:1::1")
    assert await admitted(limiter, "a/b", "2001:db8:0:1::2") is not shared
    assert await admitted(limiter, "a/b", "2001:db8:0:1000::1")  # another /56 and /64


async def test_identities_are_not_keyed_by_address() -> None:
    limiter = RateLimiter([RateLimit("1/minute")])
    await limiter.check("a/b", "alice", "2001:db8::1")
    await limiter.check("a/b", "bob", "2001:db8::2")  # same /64, another identity
