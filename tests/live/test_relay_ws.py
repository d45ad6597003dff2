"""The WebSocket relay over real sockets: proxy on uvicorn, the fake fal on its own port."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets.asyncio.client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as serve_ws

from falproxy import FalCredential, FalProxy, ProxyConfig
from falproxy.core.events import ProxyEvent
from falproxy.core.hooks import Reply, RequestContext
from falproxy.core.rate_rules import parse_rate_limits
from falproxy.core.types import Receive, Scope, Send
from falproxy.standalone.server import build_app
from tests.conftest import TEST_KEY, TEST_KEY_SECRET, proxy_config, serve
from tests.support.leak_check import open_fds
from tests.support.live import wait_until as wait_for
from tests.support.ws_helpers import (
    BIG,
    PNG_SIGNATURE,
    REALTIME,
    ROUTE,
    direct_url,
    last_session,
    masked_frame,
    pack,
    raw_handshake,
    realtime_stats,
    refusal,
    relay_url,
    unpack,
    ws_base,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.legacy")


@pytest.fixture
def proxy_with(fake_url: str) -> Iterator[Any]:
    """Start extra proxies in front of the fake with custom settings."""
    managers: list[Any] = []

    def start(**overrides: Any) -> str:
        manager = serve(FalProxy(proxy_config(fake_url, **overrides)))
        managers.append(manager)
        url: str = manager.__enter__()
        return url

    yield start
    for manager in reversed(managers):
        manager.__exit__(None, None, None)


def assert_closed_with(ws: ClientConnection, code: int, reason: str | None = None) -> None:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == code
    if reason is not None:
        assert info.value.rcvd.reason == reason


# --- frames both ways ----------------------------------------------------------------


def test_msgpack_frames_both_ways_and_the_key_stays_on_the_server(
    proxy_url: str, fake_rt: str, events: list[ProxyEvent]
) -> None:
    headers = {"cookie": "session=app-secret", "user-agent": "game-engine/1.0"}
    origin = proxy_url  # a page of the proxy's own origin (any other is refused: 403)
    with connect(relay_url(proxy_url), additional_headers=headers, origin=origin) as ws:  # type: ignore[arg-type]
        seen_by_client = [str(ws.response.headers)]
        ws.send(pack({"prompt": "a fox", "request_id": "r-1", "with_timings": True}))
        result, timings = ws.recv(timeout=10), ws.recv(timeout=10)
        seen_by_client += [repr(result), str(timings)]
    output = unpack(result)
    assert output["request_id"] == "r-1"
    assert output["images"][0]["content"].startswith(PNG_SIGNATURE)
    assert json.loads(timings)["type"] == "x-fal-message"
    assert all(TEST_KEY_SECRET not in text for text in seen_by_client)
    session = last_session(fake_rt)
    assert session["auth"] == "key"
    assert session["headers"]["authorization"] == "Key ***"
    assert session["headers"]["user-agent"] == "game-engine/1.0"
    assert session["headers"]["x-fal-client-proxy"].startswith("falproxy/")
    assert not {"cookie", "origin", "x-fal-target-url"} & session["headers"].keys()
    wait_for(lambda: events)
    event = events[-1]
    assert (event.kind, event.method, event.status) == ("websocket", "WEBSOCKET", 101)
    assert event.app_id == "fal-ai/fast-lcm-diffusion"
    assert (event.frames_up, event.frames_down) == (1, 2)
    assert event.bytes_down > len(PNG_SIGNATURE) and event.bytes_up > 0
    assert (event.close_code, event.outcome) == (1000, "ok")


def test_text_frames_and_subprotocol_are_relayed(proxy_url: str, fake_rt: str) -> None:
    with connect(relay_url(proxy_url), subprotocols=["x-fake-json"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "x-fake-json"
        ws.send(json.dumps({"prompt": "a fox", "request_id": "r-2"}))
        reply = ws.recv(timeout=10)
    assert isinstance(reply, str)
    output = json.loads(reply)
    assert output["request_id"] == "r-2"
    assert output["images"][0]["url"].startswith("data:image/png;base64,")


def test_a_5mb_binary_frame_goes_both_ways(proxy_url: str, fake_rt: str) -> None:
    blob = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    with connect(relay_url(proxy_url), max_size=BIG) as ws:
        ws.send(pack({"prompt": "big", "echo": blob}))
        output = unpack(ws.recv(timeout=30))
    assert output["echo"] == blob


def test_target_in_the_header_and_query_kept(proxy_url: str, fake_rt: str) -> None:
    url = f"{ws_base(proxy_url)}{ROUTE}"
    target = REALTIME + "?max_buffering=4"
    with connect(url, additional_headers={"x-fal-target-url": target}) as ws:
        ws.send(pack({"prompt": "x"}))
        assert unpack(ws.recv(timeout=10))["images"]
    assert last_session(fake_rt)["query"] == "max_buffering=4"


# --- refusals before the upgrade -----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("?fal_target_url=" + "https%3A%2F%2Ffal.run%2Ffal-ai%2Fx%2Frealtime", 412),
        ("?fal_target_url=" + "wss%3A%2F%2Fqueue.fal.run%2Ffal-ai%2Fx", 412),
        ("?fal_target_url=" + "wss%3A%2F%2Fevil.example%2Ffal-ai%2Fx", 412),
        ("?fal_target_url=" + "wss%3A%2F%2Ffal.run%40evil.example%2Fx%2Fy", 412),
        ("?fal_target_url=wss://fal.run/a/b&fal_target_url=wss://fal.run/c/d", 412),
        ("?fal_target_url=" + "wss%253A%252F%252Ffal.run%252Fa%252Fb", 412),  # encoded twice
    ],
)
def test_refused_targets_get_http_errors_and_never_reach_fal(
    proxy_url: str, fake_rt: str, query: str, status: int, events: list[ProxyEvent]
) -> None:
    code, body = refusal(f"{ws_base(proxy_url)}{ROUTE}{query}")
    assert code == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert realtime_stats(fake_rt)["opened"] == 0
    wait_for(lambda: events)
    assert (events[-1].status, events[-1].outcome) == (status, "refused")


def test_header_and_query_together_are_refused(proxy_url: str, fake_rt: str) -> None:
    code, _ = refusal(relay_url(proxy_url), additional_headers={"x-fal-target-url": REALTIME})
    assert code == 412
    assert realtime_stats(fake_rt)["opened"] == 0


def test_disallowed_app_is_refused_before_the_upgrade(proxy_with: Any, fake_rt: str) -> None:
    proxy = proxy_with(allowed_endpoints=("fal-ai/fast-lcm-diffusion",))
    code, body = refusal(relay_url(proxy, "wss://fal.run/fal-ai/flux/dev/realtime"))
    assert code == 403 and "not allowed" in body["detail"]
    assert realtime_stats(fake_rt)["opened"] == 0
    with connect(relay_url(proxy)) as ws:  # the allowed app still works
        ws.send(pack({"prompt": "x"}))
        assert unpack(ws.recv(timeout=10))["images"]


def test_handshakes_run_the_same_hooks_as_http(
    proxy_with: Any, fake_rt: str, events: list[ProxyEvent]
) -> None:
    async def paywall(context: RequestContext) -> Reply | None:
        if context.identity and context.identity.id == "token-2":
            return Reply(402, {"detail": "upgrade your plan"})
        return None

    proxy = proxy_with(
        auth_tokens=("first-token", "second-token"),
        rate_limits=parse_rate_limits("2/minute"),
        before_request=(paywall,),
    )
    code, body = refusal(relay_url(proxy))
    assert code == 401 and body["detail"]
    bearer = {"authorization": "Bearer second-token"}
    assert refusal(relay_url(proxy), additional_headers=bearer) == (
        402,
        {"detail": "upgrade your plan"},
    )
    allowed = {"authorization": "Bearer first-token"}
    for _ in range(2):
        with connect(relay_url(proxy), additional_headers=allowed) as ws:
            ws.send(pack({"prompt": "x"}))
            assert unpack(ws.recv(timeout=10))["images"]
    code, body = refusal(relay_url(proxy), additional_headers=allowed)
    assert code == 429 and body["detail"]
    assert realtime_stats(fake_rt)["opened"] == 2
    wait_for(lambda: len(events) >= 5)
    # A relayed socket's event is recorded when it closes, which may be after the 429.
    outcomes = sorted((event.status, event.outcome, event.identity or "") for event in events)
    assert outcomes == sorted([
        (401, "refused", ""),
        (402, "refused", "token-2"),
        (101, "ok", "token-1"),
        (101, "ok", "token-1"),
        (429, "limited", "token-1"),
    ])


def test_sockets_off_the_proxy_route_get_404(proxy_url: str, fake_rt: str) -> None:
    code, _ = refusal(relay_url(proxy_url, route="/elsewhere"))
    assert code == 404


def test_without_the_denial_extension_the_server_answers_403(fake_url: str, fake_rt: str) -> None:
    proxy = FalProxy(proxy_config(fake_url))

    async def no_extensions(scope: Scope, receive: Receive, send: Send) -> None:
        await proxy({**scope, "extensions": {}}, receive, send)

    with serve(no_extensions, lifespan="off") as url, pytest.raises(InvalidStatus) as info:
        connect(relay_url(url, "https://fal.run/fal-ai/x/realtime")).close()
    assert info.value.response.status_code == 403
    assert realtime_stats(fake_rt)["opened"] == 0


def test_fal_refusing_the_handshake_is_a_502(proxy_url: str, fake_rt: str) -> None:
    code, body = refusal(relay_url(proxy_url, REALTIME + "?max_buffering=99"))
    assert code == 502
    assert "422" in body["detail"]


def test_unreachable_fal_is_a_502(fake_url: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # bound, never listening: connections are refused
        config = ProxyConfig(
            credential=FalCredential(TEST_KEY), upstreams={"fal.run": f"http://127.0.0.1:{dead}"}
        )
        with serve(FalProxy(config)) as url:
            code, _ = refusal(relay_url(url))
    assert code == 502


# --- closing -------------------------------------------------------------------------


def test_client_close_code_and_reason_reach_fal(proxy_url: str, fake_rt: str) -> None:
    with connect(relay_url(proxy_url)) as ws:
        ws.send(pack({"prompt": "x"}))
        ws.recv(timeout=10)
        ws.close(4001, "done here")
    wait_for(lambda: "client_close_code" in last_session(fake_rt))
    session = last_session(fake_rt)
    assert (session["client_close_code"], session["client_close_reason"]) == (4001, "done here")


def test_fal_close_code_and_reason_reach_the_client(
    proxy_url: str, fake_rt: str, events: list[ProxyEvent]
) -> None:
    with connect(relay_url(proxy_url)) as ws:
        ws.send(pack({"fake_close_code": 4002, "fake_close_reason": "bye"}))
        assert_closed_with(ws, 4002, "bye")
    wait_for(lambda: events)
    assert events[-1].close_code == 4002


def test_empty_client_close_reaches_fal_as_1000(proxy_url: str, fake_rt: str) -> None:
    path = relay_url(proxy_url).split(proxy_url.removeprefix("http://"), 1)[1]
    with raw_handshake(proxy_url, path) as sock:
        wait_for(lambda: realtime_stats(fake_rt)["active"] == 1)
        sock.sendall(masked_frame(0x8, b""))  # a close frame without a code: 1005
        sock.recv(64)
    wait_for(lambda: "client_close_code" in last_session(fake_rt))
    assert last_session(fake_rt)["client_close_code"] == 1000


def test_a_client_that_vanishes_makes_the_upstream_close(
    proxy_url: str, fake_rt: str, events: list[ProxyEvent]
) -> None:
    path = relay_url(proxy_url).split(proxy_url.removeprefix("http://"), 1)[1]
    sock = raw_handshake(proxy_url, path)
    wait_for(lambda: realtime_stats(fake_rt)["active"] == 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST, no close frame
    wait_for(lambda: realtime_stats(fake_rt)["active"] == 0)
    assert last_session(fake_rt)["client_close_code"] == 1011
    wait_for(lambda: events)
    assert (events[-1].outcome, events[-1].close_code) == ("client_gone", 1011)


def test_an_upstream_that_vanishes_closes_the_client_with_1011() -> None:
    def vanish(conn: ServerConnection) -> None:
        conn.recv()
        conn.socket.shutdown(socket.SHUT_RDWR)  # no close frame

    quiet = logging.getLogger("tests.rogue_upstream")  # it plays fal: it receives the key
    quiet.setLevel(logging.INFO)  # and must not log it at DEBUG like websockets does
    with serve_ws(vanish, "127.0.0.1", 0, logger=quiet) as rogue:
        thread = threading.Thread(target=rogue.serve_forever, daemon=True)
        thread.start()
        port = rogue.socket.getsockname()[1]
        config = ProxyConfig(
            credential=FalCredential(TEST_KEY), upstreams={"fal.run": f"http://127.0.0.1:{port}"}
        )
        with serve(FalProxy(config)) as url, connect(relay_url(url)) as ws:
            ws.send(b"\x80")
            assert_closed_with(ws, 1011)
        rogue.shutdown()
        thread.join(timeout=5)


def test_idle_sockets_are_closed_on_both_sides(proxy_with: Any, fake_rt: str) -> None:
    proxy = proxy_with(ws_idle_timeout=0.3)
    with connect(relay_url(proxy)) as ws:
        ws.send(pack({"prompt": "x"}))
        ws.recv(timeout=10)
        assert_closed_with(ws, 1000, "idle timeout")
    wait_for(lambda: "client_close_code" in last_session(fake_rt))
    assert last_session(fake_rt)["client_close_code"] == 1000


def test_messages_over_the_limit_close_with_1009(proxy_with: Any, fake_rt: str) -> None:
    proxy = proxy_with(ws_max_message_bytes=1024)
    with connect(relay_url(proxy)) as ws:
        ws.send(pack({"prompt": "x", "echo": b"\x00" * 2048}))
        assert_closed_with(ws, 1009)
    wait_for(lambda: "client_close_code" in last_session(fake_rt))
    assert last_session(fake_rt)["client_close_code"] == 1009
    assert realtime_stats(fake_rt)["frames_in"] == 0


# --- many sockets --------------------------------------------------------------------

SOCKETS = 200


async def one_round_trip(url: str, index: int) -> int:
    async with websockets.asyncio.client.connect(url, open_timeout=60) as ws:
        await ws.send(pack({"prompt": "crowd", "request_id": f"r-{index}"}))
        output = unpack(await asyncio.wait_for(ws.recv(), 60))
    return int(str(output["request_id"]).removeprefix("r-"))


async def test_200_concurrent_sockets_and_fds_return_to_start(
    proxy_url: str, fake_rt: str, events: list[ProxyEvent]
) -> None:
    url = relay_url(proxy_url)
    await one_round_trip(url, -1)  # warm up: lazily created loop resources
    await asyncio.sleep(0.5)
    start = open_fds()
    done = await asyncio.wait_for(
        asyncio.gather(*(one_round_trip(url, i) for i in range(SOCKETS))), timeout=120
    )
    assert sorted(done) == list(range(SOCKETS))

    def ok_events() -> int:
        return sum(e.status == 101 and e.outcome == "ok" for e in events)

    for _ in range(300):  # bounded settle time: about 15 s
        if open_fds() <= start and ok_events() == SOCKETS + 1:
            break
        await asyncio.sleep(0.05)
    assert open_fds() <= start
    assert ok_events() == SOCKETS + 1


# --- token minting for the JS client's realtime.connect --------------------------------


def test_token_minting_through_the_proxy_is_policed_and_capped(
    proxy_with: Any, fake_rt: str
) -> None:
    proxy = proxy_with(allowed_endpoints=("fal-ai/fast-lcm-diffusion/**",))
    target = {"x-fal-target-url": "https://rest.fal.ai/tokens/"}
    with httpx.Client(base_url=proxy, headers=target, timeout=30) as http:
        foreign = http.post(ROUTE, json={"allowed_apps": ["flux"], "token_expiration": 60})
        assert foreign.status_code == 403
        minted = http.post(
            ROUTE, json={"allowed_apps": ["fast-lcm-diffusion"], "token_expiration": 86400}
        )
    assert minted.status_code == 200
    token = minted.json()
    claims = json.loads(_b64url(token.split(".")[1]))
    assert claims["exp"] - claims["iat"] == 300
    with connect(direct_url(fake_rt, query=f"fal_jwt_token={token}")) as ws:
        ws.send(pack({"prompt": "x"}))
        assert unpack(ws.recv(timeout=10))["images"]
    assert last_session(fake_rt)["auth"] == "token"
    with connect(direct_url(fake_rt, "fal-ai/flux", f"fal_jwt_token={token}")) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"status": "error", "error": "Unauthorized"}


def _b64url(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_serve_fake_mode_relays_to_the_mounted_fake() -> None:
    """``falproxy serve --fake``: the proxy calls the fake under /_fake on its own port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build_app(ProxyConfig(), fake_base=f"http://127.0.0.1:{port}", fake_speed=0.05)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive())
        with connect(relay_url(f"http://127.0.0.1:{port}")) as ws:
            ws.send(pack({"prompt": "x", "request_id": "fake-mode"}))
            assert unpack(ws.recv(timeout=10))["request_id"] == "fake-mode"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
