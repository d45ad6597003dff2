"""Limits on admitted WebSockets (issue 12 item 11), over real sockets before the fake fal.

Before, a socket passed the rate limit once at its handshake and could then relay any
number of inferences. ``ws_message_rate`` counts client messages per identity across all
its sockets (closing with 1008); ``ws_max_sockets`` bounds its open sockets (429).
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from falproxy import FalProxy
from falproxy.core.events import ProxyEvent
from tests.conftest import proxy_config, serve
from tests.support.live import wait_until as wait_for
from tests.support.redis_support import RedisServer
from tests.support.ws_helpers import (
    pack,
    realtime_stats,
    refusal,
    relay_url,
    unpack,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.legacy")

TOKENS = ("alice-token", "bob-token")  # identities token-1 and token-2
ALICE = {"authorization": "Bearer alice-token"}
BOB = {"authorization": "Bearer bob-token"}


def inference(ws: ClientConnection, tag: str) -> str:
    ws.send(pack({"prompt": "x", "request_id": tag}))
    return str(unpack(ws.recv(timeout=10))["request_id"])


def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


def test_the_message_rate_counts_every_socket_of_an_identity(
    fake_url: str, fake_rt: str, events: list[ProxyEvent]
) -> None:
    config = proxy_config(fake_url, auth_tokens=TOKENS, ws_message_rate="3/minute")
    with serve(FalProxy(config)) as proxy:
        url = relay_url(proxy)
        with connect(url, additional_headers=ALICE) as first:
            with connect(url, additional_headers=ALICE) as second:
                assert [inference(first, "a1"), inference(second, "a2")] == ["a1", "a2"]
                assert inference(first, "a3") == "a3"
                second.send(pack({"prompt": "x", "request_id": "a4"}))  # the 4th this minute
                assert closed_with(second) == (1008, "message rate exceeded")
            # Bob has his own budget, even while Alice is over hers.
            with connect(url, additional_headers=BOB) as bob:
                assert inference(bob, "b1") == "b1"
            # And Alice's other socket is over the budget too: it is shared.
            first.send(pack({"prompt": "x"}))
            assert closed_with(first)[0] == 1008
    assert realtime_stats(fake_rt)["frames_in"] == 4  # the refused messages never reached fal
    wait_for(lambda: sum(e.outcome == "limited" for e in events) == 2)
    limited = [e for e in events if e.outcome == "limited"]
    assert {(e.close_code, e.identity, e.status) for e in limited} == {(1008, "token-1", 101)}


def test_the_message_rate_is_shared_by_workers_through_redis(
    fake_url: str, fake_rt: str, redis_server: RedisServer
) -> None:
    config = proxy_config(fake_url, ws_message_rate="2/minute", redis_url=redis_server.url)
    with serve(FalProxy(config)) as worker_1, serve(FalProxy(config)) as worker_2:
        with connect(relay_url(worker_1)) as ws:  # anonymous: counted by client address
            assert inference(ws, "w1") == "w1"
        with connect(relay_url(worker_2)) as ws:
            assert inference(ws, "w2") == "w2"
            ws.send(pack({"prompt": "x"}))
            assert closed_with(ws)[0] == 1008
    assert realtime_stats(fake_rt)["frames_in"] == 2


def test_open_sockets_per_identity_are_bounded(
    fake_url: str, fake_rt: str, events: list[ProxyEvent]
) -> None:
    config = proxy_config(fake_url, auth_tokens=TOKENS, ws_max_sockets=2)
    with serve(FalProxy(config)) as proxy, ExitStack() as held:
        url = relay_url(proxy)
        alice = [held.enter_context(connect(url, additional_headers=ALICE)) for _ in range(2)]
        status, body = refusal(url, additional_headers=ALICE)
        assert (status, body) == (429, {"detail": "At most 2 open WebSockets per caller"})
        bob = held.enter_context(connect(url, additional_headers=BOB))
        assert inference(bob, "b") == "b"
        alice.pop().close()  # a slot frees when a socket ends
        wait_for(lambda: sum(e.status == 101 for e in events) == 1)
        again = held.enter_context(connect(url, additional_headers=ALICE))
        assert inference(again, "a") == "a"
        assert refusal(url, additional_headers=ALICE)[0] == 429
    assert realtime_stats(fake_rt)["opened"] == 4  # the refused handshakes never reached fal
    refusals = [(e.status, e.outcome, e.identity) for e in events if e.status == 429]
    assert refusals == [(429, "limited", "token-1")] * 2


def test_a_refused_upstream_frees_the_slot(fake_url: str, fake_rt: str) -> None:
    config = proxy_config(fake_url, ws_max_sockets=1)
    with serve(FalProxy(config)) as proxy:
        for _ in range(3):  # fal refuses (422): each try must give its slot back
            assert refusal(relay_url(proxy) + "%3Fmax_buffering%3D99")[0] == 502
        with connect(relay_url(proxy)) as ws:
            assert inference(ws, "ok") == "ok"
