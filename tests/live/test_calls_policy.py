"""The policy's call rules over real sockets, on the ASGI app and the WSGI pipeline alike.

Issue 12 items 7 (minting switched off), 8 (one method per queue request URL) and 9 (one
canonical app id: no ``;`` parameters, no trailing-slash twin). Each refused call gets a
JSON error and never reaches the fake fal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from falproxy import RateLimit
from tests.support.in_process import Front
from tests.support.live import ROUTE

QUEUE = "https://queue.fal.run/fal-ai/flux/requests/0b7c1a2e-5f0d-4a8e-9d1c-3e2f4a5b6c7d"
TOKENS = "https://rest.fal.ai/tokens/"


@pytest.fixture
def proxied(fake: httpx.Client) -> Callable[[], int]:
    """How many requests the fake fal has received since the test began."""
    start = fake.get("/__fake__/stats").json()["requests"]
    return lambda: int(fake.get("/__fake__/stats").json()["requests"]) - start


def call(url: str, method: str, target: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=10) as client:
        return client.request(method, ROUTE, headers={"x-fal-target-url": target}, **kwargs)


@pytest.mark.parametrize(
    ("method", "tail", "allow"),
    [
        ("POST", "/status", "GET"),
        ("DELETE", "/status/stream", "GET"),
        ("PUT", "", "GET"),
        ("POST", "/logs", "GET"),
        ("GET", "/cancel", "PUT"),
        ("POST", "/cancel", "PUT"),
    ],
)
def test_a_queue_request_url_with_the_wrong_method_is_405(
    front: Front, fake_url: str, proxied: Callable[[], int], method: str, tail: str, allow: str
) -> None:
    with front(fake_url) as url:
        refused = call(url, method, QUEUE + tail, json={})
        assert refused.status_code == 405
        assert refused.headers["allow"] == allow
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["detail"]
        assert proxied() == 0
        # The right method is relayed (whatever the fake answers for an unknown request id).
        call(url, allow, QUEUE + tail)
        assert proxied() == 1


def test_a_path_parameter_is_refused(
    front: Front, fake_url: str, proxied: Callable[[], int]
) -> None:
    with front(fake_url) as url:
        for target in (
            "https://fal.run/fal-ai/flux/dev;x",
            "https://fal.run/fal-ai/flux/dev%3Bx",
            "https://queue.fal.run/fal-ai/flux;v=2/dev",
        ):
            refused = call(url, "POST", target, json={"prompt": "a fox"})
            assert refused.status_code == 412, target
            assert "detail" in refused.json()
    assert proxied() == 0


def test_an_exact_limit_holds_for_every_spelling_of_the_endpoint(
    front: Front, fake_url: str, proxied: Callable[[], int]
) -> None:
    limits = (RateLimit("1/minute", "fal-ai/flux/dev"),)
    with front(fake_url, rate_limits=limits) as url:
        first = call(url, "POST", "https://fal.run/fal-ai/flux/dev", json={"prompt": "a fox"})
        assert first.status_code == 200
        for twin in ("https://fal.run/fal-ai/flux/dev/", "https://fal.run/fal-ai/flux/dev;x"):
            assert call(url, "POST", twin, json={}).status_code in (412, 429), twin
        assert call(url, "POST", "https://fal.run/fal-ai/flux/dev/", json={}).status_code == 429
    assert proxied() == 1


def test_an_exact_endpoint_allow_list_admits_the_trailing_slash_twin_as_the_same_app(
    front: Front, fake_url: str
) -> None:
    endpoints = ("fal-ai/flux/dev",)
    limits = (RateLimit("1/minute", "fal-ai/flux/dev"),)
    with front(fake_url, allowed_endpoints=endpoints, rate_limits=limits) as url:
        assert call(url, "POST", "https://fal.run/fal-ai/flux/dev/", json={}).status_code != 403
        assert call(url, "POST", "https://fal.run/fal-ai/flux/dev", json={}).status_code == 429


def test_token_minting_can_be_switched_off(
    front: Front, fake_url: str, proxied: Callable[[], int]
) -> None:
    with front(fake_url, token_minting=False) as url:
        refused = call(url, "POST", TOKENS, json={"allowed_apps": ["flux"]})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/json"
        assert "minting" in refused.json()["detail"]
        flux = call(url, "POST", "https://fal.run/fal-ai/flux/dev", json={"prompt": "a fox"})
        assert flux.status_code == 200
    assert proxied() == 1
    with front(fake_url) as url:  # on by default
        assert call(url, "POST", TOKENS, json={"allowed_apps": ["flux"]}).status_code == 200
