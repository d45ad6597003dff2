"""An app's own slowapi ``Limiter`` and falproxy's limits, side by side on one Redis.

The README tells FastAPI users to keep both: slowapi for the app's routes, falproxy's
rules for fal calls. This serves exactly that shape (on Starlette, which slowapi also
supports) and checks that the two budgets are independent and their keys never collide.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import httpx
import redis
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from falproxy import FalProxy, RateLimit
from tests.conftest import proxy_config, serve
from tests.support.hook_support import run
from tests.support.redis_support import RedisServer, pytestmark  # noqa: F401 (the skip rule)


def test_slowapi_and_falproxy_limits_are_independent(
    fake_url: str, redis_server: RedisServer
) -> None:
    limiter = Limiter(key_func=get_remote_address, storage_uri=redis_server.url)

    @limiter.limit("2/minute")
    async def profile(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    config = proxy_config(fake_url, allow_anonymous=True, redis_url=redis_server.url)
    proxy = FalProxy(
        dataclasses.replace(config, route="/proxy", rate_limits=(RateLimit("3/minute"),))
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await proxy.aclose()  # a mounted app gets no lifespan of its own

    routes = [Route("/api/profile", profile), Mount("/fal", app=proxy)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert [client.get("/api/profile").status_code for _ in range(3)] == [200, 200, 429]
        calls = [run(client, route="/fal/proxy").status_code for _ in range(4)]
        assert calls == [200, 200, 200, 429]  # untouched by the profile budget
    keys = redis.Redis.from_url(redis_server.url).keys("*")
    names = sorted(key.decode() for key in keys)
    assert [name for name in names if name.startswith("LIMITS:")] == [
        "LIMITS:LIMITER/127.0.0.1//api/profile/2/1/minute"  # slowapi's
    ]
    assert [name for name in names if name.startswith("FALPROXY:")] == [
        "FALPROXY:LIMITER/falproxy/0/ip:127.0.0.1/3/1/minute"  # ours
    ]
