"""Declarative rate limits in memory, live: 429 answers, keys, globs, costs, addresses."""

from __future__ import annotations

import pytest

from falproxy import ProxyConfig, ProxyEvent, RateLimit
from falproxy.config.settings import ConfigError
from falproxy.core.rate_rules import parse_rate_limits
from tests.support.hook_support import FLUX, SCHNELL, bearer, live_proxy, run

TOKENS = ("alice-token", "bob-token")


def test_parse_rate_limits() -> None:
    rules = parse_rate_limits("60/minute; 5/minute fal-ai/flux-pro/** cost=2 ;2/second per=global")
    assert rules == (
        RateLimit("60/minute"),
        RateLimit("5/minute", "fal-ai/flux-pro/**", "identity", 2),
        RateLimit("2/second", "**", "global", 1),
    )
    for bad in ("lots", "5/minute per=planet", "5/minute cost=0", "5/minute color=red"):
        with pytest.raises(ValueError, match="bad rate limit"):
            parse_rate_limits(bad)
    with pytest.raises(ConfigError, match="FALPROXY_RATE_LIMIT"):
        ProxyConfig.from_env({"FAL_KEY": "a:b", "FALPROXY_RATE_LIMIT": "5/fortnight"})


def test_over_the_limit_is_429_with_headers(fake_url: str) -> None:
    events: list[ProxyEvent] = []

    async def record(event: ProxyEvent) -> None:
        events.append(event)

    limits = (RateLimit("2/minute"),)
    settings = {"auth_tokens": TOKENS, "rate_limits": limits, "on_event": (record,)}
    with live_proxy(fake_url, **settings) as client:
        alice, bob = bearer("alice-token"), bearer("bob-token")
        assert [run(client, **alice).status_code for _ in range(2)] == [200, 200]
        limited = run(client, **alice)
        assert limited.status_code == 429
        assert limited.json() == {"detail": "Rate limit exceeded"}
        retry_after = int(limited.headers["retry-after"])  # whole seconds
        assert 1 <= retry_after <= 60
        assert limited.headers["ratelimit-limit"] == "2"
        assert limited.headers["ratelimit-remaining"] == "0"
        assert int(limited.headers["ratelimit-reset"]) == retry_after
        assert run(client, **bob).status_code == 200  # per identity: bob has his own
    assert sorted(e.outcome for e in events) == ["limited", "ok", "ok", "ok"]


def test_endpoint_glob_and_cost(fake_url: str) -> None:
    limits = (RateLimit("3/minute", "fal-ai/flux/schnell", cost=2),)
    with live_proxy(fake_url, rate_limits=limits, allow_anonymous=True) as client:
        assert run(client, SCHNELL).status_code == 200  # 2 of 3 used
        assert run(client, SCHNELL).status_code == 429  # would be 4
        assert [run(client, FLUX).status_code for _ in range(4)] == [200] * 4  # not matched


def test_several_limits_at_once(fake_url: str) -> None:
    limits = (RateLimit("5/minute"), RateLimit("1/minute", per="global"))
    with live_proxy(fake_url, rate_limits=limits, auth_tokens=TOKENS) as client:
        assert run(client, **bearer("alice-token")).status_code == 200
        assert run(client, **bearer("bob-token")).status_code == 429  # the global one


def test_address_limit_trusts_forwarded_for_only_from_trusted_peers(fake_url: str) -> None:
    limits = (RateLimit("1/minute", per="address"),)
    with live_proxy(fake_url, rate_limits=limits, allow_anonymous=True) as client:
        # The peer (127.0.0.1) is not trusted: the header is ignored, one shared address.
        assert run(client, **{"x-forwarded-for": "203.0.113.1"}).status_code == 200
        assert run(client, **{"x-forwarded-for": "203.0.113.2"}).status_code == 429
    settings = {"rate_limits": limits, "allow_anonymous": True, "trusted_proxies": ("127.0.0.1",)}
    with live_proxy(fake_url, **settings) as client:
        assert run(client, **{"x-forwarded-for": "203.0.113.1"}).status_code == 200
        assert run(client, **{"x-forwarded-for": "203.0.113.2"}).status_code == 200
        spoofed = {"x-forwarded-for": "198.51.100.9, 203.0.113.1"}  # client-prepended junk
        assert run(client, **spoofed).status_code == 429


def test_anonymous_calls_are_limited_by_address(fake_url: str) -> None:
    limits = (RateLimit("1/minute"),)
    with live_proxy(fake_url, rate_limits=limits, allow_anonymous=True) as client:
        assert run(client).status_code == 200
        assert run(client).status_code == 429
