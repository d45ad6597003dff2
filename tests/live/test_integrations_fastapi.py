"""FastAPI / Starlette: plain mount, the mount helper's lifespan, and the router helper."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException
from starlette.applications import Starlette

from falproxy import FalProxy
from falproxy.integrations.fastapi import fal_proxy_router, mount, proxy_lifespan
from tests.conftest import proxy_config, serve

ROUTE = "/api/fal/proxy"
ECHO = {"x-fal-target-url": "https://fal.run/fake/echo", "content-type": "application/json"}


def test_plain_mount_serves_the_mount_root(fake_url: str) -> None:
    proxy = FalProxy(proxy_config(fake_url))
    # Without proxy_lifespan the pooled client would never close (a mount gets no lifespan).
    app = Starlette(lifespan=proxy_lifespan(proxy))
    app.mount(ROUTE, proxy)
    with serve(app) as url:
        response = httpx.post(url + ROUTE + "/", headers=ECHO, json={"a": 1})
        assert response.status_code == 200
        assert json.loads(response.json()["body"]) == {"a": 1}
        # The trap mount() avoids: Starlette redirects the bare route to "route/".
        bare = httpx.post(url + ROUTE, headers=ECHO, json={"a": 1})
        assert bare.status_code == 307
        assert httpx.get(url + ROUTE + "/healthz").json() == {"status": "ok"}
    assert not proxy.upstream.is_open


def test_mount_serves_the_exact_route_and_closes_the_client(fake_url: str) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("app started")
        yield
        events.append("app stopped")

    app = FastAPI(lifespan=own_lifespan)

    @app.get("/{anything:path}")  # a catch-all the proxy route must not be shadowed by
    def catch_all(anything: str) -> dict[str, str]:
        return {"page": anything}

    proxy = mount(app, FalProxy(proxy_config(fake_url)))
    with serve(app) as url:
        for path in (ROUTE, ROUTE + "/"):
            response = httpx.post(url + path, headers=ECHO, json={"a": 1})
            assert response.status_code == 200
            assert response.json()["authorized"] is True
        assert httpx.get(url + ROUTE, headers={"x-fal-target-url": "https://x.example/"}).json()[
            "detail"
        ]
        assert proxy.upstream.is_open
    assert events == ["app started", "app stopped"]
    assert not proxy.upstream.is_open, "the upstream client was not closed at shutdown"


def require_app_token(x_app_token: str | None = Header(default=None)) -> None:
    if x_app_token != "let-me-in":
        raise HTTPException(status_code=401, detail="Sign in first")


def test_router_runs_dependencies_first(fake_url: str, fake: httpx.Client) -> None:
    proxy = FalProxy(proxy_config(fake_url))
    app = FastAPI(lifespan=proxy_lifespan(proxy))
    app.include_router(fal_proxy_router(proxy, dependencies=[Depends(require_app_token)]))
    stream = {**ECHO, "x-fal-target-url": "https://fal.run/fake/slow-stream?events=3&interval=0"}
    with serve(app) as url:
        refused = httpx.post(url + ROUTE, headers=ECHO, json={})
        assert refused.status_code == 401
        assert refused.json() == {"detail": "Sign in first"}
        assert fake.get("/__fake__/stats").json()["requests"] == 0
        allowed = httpx.post(url + ROUTE, headers={**ECHO, "x-app-token": "let-me-in"}, json={})
        assert allowed.status_code == 200
        assert allowed.json()["headers"]["authorization"] == "Key ***"
        assert "x-app-token" not in allowed.json()["headers"]
        with httpx.stream(
            "POST", url + ROUTE, headers={**stream, "x-app-token": "let-me-in"}, json={}
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            data = [line for line in response.iter_lines() if line.startswith("data:")]
        assert len(data) == 3
        elsewhere = {"x-fal-target-url": "https://x.example/", "x-app-token": "let-me-in"}
        refused_target = httpx.get(url + ROUTE, headers=elsewhere)
        assert refused_target.status_code == 412
    assert not proxy.upstream.is_open
