"""A relayed WebSocket outlives every timeout setting of ``falproxy serve`` (issue 18 hole 0).

Both servers (``--server native`` and ``--server asgi``) run as subprocesses with every
timeout setting at 1 s; a socket kept busy (1 KiB every 200 ms) for more than three times
that must stay open, and close with 1000 as seen by the client and by the fake fal. Before
the fix, the head guard of the guarded uvicorn protocol stayed armed after the upgrade and
cut every socket after exactly ``FALPROXY_HEADER_TIMEOUT`` (no close frame: 1006).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from falproxy import FalProxy
from falproxy.standalone.protocols import GuardedH11Protocol
from tests.conftest import proxy_config, serve
from tests.support.ports import free_port
from tests.support.procs import falproxy_serve, proxy_env
from tests.support.ws_helpers import assert_busy_socket_closes_normally, relay_url

# Every FALPROXY_* timeout, short: the socket must outlive three times the longest of them.
SHORT = 1.0
TIMEOUTS = {
    name: f"{SHORT:g}"
    for name in (
        "FALPROXY_HEADER_TIMEOUT",
        "FALPROXY_BODY_TIMEOUT",
        "FALPROXY_BODY_DEADLINE",
        "FALPROXY_CONNECT_TIMEOUT",
        "FALPROXY_UPSTREAM_TIMEOUT",
        "FALPROXY_STREAM_IDLE_TIMEOUT",
        "FALPROXY_WS_IDLE_TIMEOUT",
        "FALPROXY_WS_PING_INTERVAL",
        "FALPROXY_WS_PING_TIMEOUT",
    )
}
# uvicorn's own keep-alive timeout (5 s, not a falproxy setting) must not cut it either.
UVICORN_KEEP_ALIVE = 5.0
BUSY_FOR = max(3 * SHORT, UVICORN_KEEP_ALIVE) + 1.0  # longer than every timeout above


@pytest.fixture(scope="module", params=["native", "asgi"])
def short_timeouts_serve(request: pytest.FixtureRequest, fake_url: str) -> Iterator[str]:
    port = free_port()
    env = proxy_env(fake_url, **TIMEOUTS)
    with falproxy_serve(env, port, "--server", request.param):
        yield f"http://127.0.0.1:{port}"


def test_a_busy_socket_outlives_every_timeout(short_timeouts_serve: str, fake_url: str) -> None:
    assert_busy_socket_closes_normally(
        relay_url(short_timeouts_serve), fake_url, BUSY_FOR, origin=short_timeouts_serve
    )


class ShortH11(GuardedH11Protocol):
    header_timeout = SHORT


def test_the_guarded_h11_protocol_keeps_a_busy_socket_too(fake_url: str) -> None:
    """For embedders who pin h11: the same guard, the same rule."""
    config = proxy_config(
        fake_url, ws_idle_timeout=SHORT, ws_ping_interval=SHORT, ws_ping_timeout=SHORT
    )
    with serve(FalProxy(config), http=ShortH11) as proxy:
        assert_busy_socket_closes_normally(relay_url(proxy), fake_url, BUSY_FOR)
