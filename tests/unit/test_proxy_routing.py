"""Routing of the proxy layer (falproxy/proxy/routing.py), over a recording exchange."""

from __future__ import annotations

import json
from typing import Any

from falproxy import ProxyConfig
from falproxy.core.answers import Answer
from falproxy.core.types import Scope
from falproxy.proxy import Proxy, serve_http


class Recorded:
    """An exchange that records the whole answers the proxy writes (no body, no relay)."""

    def __init__(self, path: str, method: str = "GET") -> None:
        self.scope: Scope = {"type": "http", "method": method, "path": path, "headers": []}
        self.answers: list[Answer] = []

    async def answer(self, answer: Answer) -> None:
        self.answers.append(answer)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"routing used {name}")


def proxy() -> Proxy:
    return Proxy(ProxyConfig(credential="key-id:key-secret"))


async def test_an_operational_path_is_answered_by_its_endpoint() -> None:
    exchange = Recorded("/healthz")
    await serve_http(proxy(), exchange)  # type: ignore[arg-type]
    [answer] = exchange.answers
    assert answer.status == 200


async def test_any_other_path_is_a_json_404() -> None:
    exchange = Recorded("/elsewhere")
    await serve_http(proxy(), exchange)  # type: ignore[arg-type]
    [answer] = exchange.answers
    assert answer.status == 404
    assert "detail" in json.loads(answer.body)


async def test_the_proxy_route_is_served_as_a_call() -> None:
    """A preflight on the route is the call path's (CORS), never the 404 of routing."""
    config = ProxyConfig(credential="key-id:key-secret", cors_origins=("https://a.example",))
    exchange = Recorded(config.route, method="OPTIONS")
    exchange.scope["headers"] = [
        (b"origin", b"https://a.example"),
        (b"access-control-request-method", b"POST"),
    ]
    await serve_http(Proxy(config), exchange)  # type: ignore[arg-type]
    [answer] = exchange.answers
    assert answer.status == 204
