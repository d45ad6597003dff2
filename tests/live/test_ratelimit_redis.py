"""Rate limits against a real Redis: one global limit across two proxy processes, and
the fail-open / fail-closed policy when Redis goes away mid-test.

Redis is Debian's ``redis-server`` (``scripts/test`` installs it when missing), started
per test on a free loopback port with persistence off.
"""

from __future__ import annotations

import time

import httpx
import pytest

from falproxy import RateLimit
from tests.conftest import TEST_KEY
from tests.support.cli import clean_env, running
from tests.support.hook_support import bearer, live_proxy, run
from tests.support.metrics import scrape, value
from tests.support.ports import free_port
from tests.support.redis_support import RedisServer, pytestmark  # noqa: F401 (the skip rule)


def test_two_proxy_processes_share_one_limit(fake_url: str, redis_server: RedisServer) -> None:
    env = clean_env(
        FAL_KEY=TEST_KEY,
        FALPROXY_AUTH_TOKENS="tok-a,tok-b",
        FALPROXY_RATE_LIMIT="5/minute",
        FALPROXY_REDIS_URL=redis_server.url,
    )
    ports = free_port(), free_port()
    upstream = ["--upstream", f"fal.run={fake_url}/run", "--log-level", "warning"]
    with (
        running(["serve", "--port", str(ports[0]), *upstream], env, ports[0]) as first,
        running(["serve", "--port", str(ports[1]), *upstream], env, ports[1]) as second,
        httpx.Client(base_url=first) as a,
        httpx.Client(base_url=second) as b,
    ):
        statuses = [run((a, b)[n % 2], **bearer("tok-a")).status_code for n in range(8)]
        assert statuses == [200] * 5 + [429] * 3  # one budget, whichever replica
        assert run(b, **bearer("tok-b")).status_code == 200  # per identity


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_down_follows_policy(
    fake_url: str, redis_server: RedisServer, fail_open: bool
) -> None:
    limits = (RateLimit("2/minute"),)
    settings = {
        "rate_limits": limits,
        "redis_url": redis_server.url,
        "rate_limit_fail_open": fail_open,
        "allow_anonymous": True,
    }
    with live_proxy(fake_url, **settings) as client:
        assert [run(client).status_code for _ in range(3)] == [200, 200, 429]
        redis_server.stop()
        started = time.monotonic()
        down = [run(client) for _ in range(3)]
        assert time.monotonic() - started < 10  # a dead Redis costs milliseconds, not minutes
        if fail_open:
            assert [r.status_code for r in down] == [200] * 3
        else:
            assert [r.status_code for r in down] == [503] * 3
            assert down[0].json() == {"detail": "Rate limiting is unavailable; try again shortly"}
            assert down[0].headers["retry-after"] == "1"
        action = "admitted" if fail_open else "refused"
        samples = scrape(client)
        assert value(samples, "falproxy_rate_limit_storage_errors_total", action=action) == 3
        redis_server.start()  # back: counting resumes with a fresh (empty) Redis
        assert [run(client).status_code for _ in range(3)] == [200, 200, 429]
