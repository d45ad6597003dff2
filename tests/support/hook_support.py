"""Helpers shared by the hook, auth, limit, metrics and CORS tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from falproxy import FalProxy
from tests.conftest import proxy_config, serve

ROUTE = "/api/fal/proxy"
FLUX = "https://fal.run/fal-ai/flux/dev"
SCHNELL = "https://fal.run/fal-ai/flux/schnell"


@contextmanager
def live_proxy(fake_url: str, **overrides: Any) -> Iterator[httpx.Client]:
    """A proxy with custom settings in front of the fake, and a client for it."""
    proxy = FalProxy(proxy_config(fake_url, upstream_timeout=10.0, **overrides))
    with serve(proxy) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def run(
    client: httpx.Client, target: str = FLUX, *, route: str = ROUTE, **headers: str
) -> httpx.Response:
    """One sync fal.run call through the proxy."""
    return client.post(
        route,
        headers={"x-fal-target-url": target, "content-type": "application/json", **headers},
        json={"prompt": "a fox"},
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
