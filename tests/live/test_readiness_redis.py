"""``/readyz`` names Redis's state, and fails only when failing closed (issue 19, item 9).

With ``FALPROXY_REDIS_URL`` set, every ``/readyz`` answer says ``"redis": "ok"`` or
``"unreachable"``. Failing open (the default) the process stays ready with Redis down and
still serves calls: every replica shares the one Redis, so a 503 from all of them would
turn a degraded limiter into an outage. Failing closed it answers 503 naming ``redis``,
since it refuses every rate-limited call. A real ``redis-server`` is stopped mid-run.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.live import ROUTE, target
from tests.support.procs import falproxy_serve, free_port, proxy_env
from tests.support.redis_support import RedisServer, pytestmark  # noqa: F401

LIMITED = "https://fal.run/fal-ai/flux/dev"


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_readyz_names_redis_and_fails_only_when_failing_closed(
    fake_url: str, redis_server: RedisServer, fail_open: bool
) -> None:
    env = proxy_env(
        fake_url,
        FALPROXY_REDIS_URL=redis_server.url,
        FALPROXY_RATE_LIMIT="100/minute",
        FALPROXY_RATE_LIMIT_FAIL_OPEN=str(fail_open).lower(),
    )
    port = free_port()
    with falproxy_serve(env, port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        up = client.get("/readyz")
        assert (up.status_code, up.json()) == (200, {"status": "ready", "redis": "ok"})
        redis_server.stop()
        down = client.get("/readyz", timeout=10)
        call = client.post(ROUTE, headers=target(LIMITED), json={"prompt": "x"}, timeout=30)
        assert client.get("/healthz").status_code == 200  # liveness never follows Redis
    if fail_open:
        assert (down.status_code, down.json()) == (200, {"status": "ready", "redis": "unreachable"})
        assert call.status_code == 200
    else:
        assert down.status_code == 503
        assert down.json() == {"status": "not ready", "failing": ["redis"], "redis": "unreachable"}
        assert call.status_code == 503
