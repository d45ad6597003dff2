"""Cross-site WebSocket hijacking (issue 12 item 3), over real sockets before the fake fal.

A page on another site can open a socket to the proxy and the browser attaches the
user's cookies; only the handshake's ``Origin`` tells the proxy who asked.
"""

from __future__ import annotations

from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from examples import hooks_session_auth
from falproxy import FalProxy
from tests.conftest import proxy_config, serve
from tests.support.ws_helpers import (
    pack,
    realtime_stats,
    refusal,
    relay_url,
    reset_realtime,
    unpack,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.legacy")

APP_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.example"
VICTIM_COOKIE = {"cookie": "session=session-abc"}


def relays(url: str, **kwargs: Any) -> bool:
    with connect(url, **kwargs) as ws:
        ws.send(pack({"prompt": "x"}))
        return bool(unpack(ws.recv(timeout=10))["images"])


def test_the_session_example_refuses_a_foreign_page_carrying_the_cookie(fake_url: str) -> None:
    reset_realtime(fake_url)
    config = proxy_config(fake_url, cors_origins=(APP_ORIGIN,))
    with serve(hooks_session_auth.create_app(config)) as proxy:
        url = relay_url(proxy)
        status, body = refusal(url, origin=EVIL_ORIGIN, additional_headers=VICTIM_COOKIE)
        assert status == 403
        assert body == {"detail": "WebSockets from this origin are not allowed"}
        assert realtime_stats(fake_url)["opened"] == 0  # fal never heard of it
        # The app's own page, with the same cookie, is relayed.
        assert relays(url, origin=APP_ORIGIN, additional_headers=VICTIM_COOKIE)
        # A listed origin is not an identity: without the cookie, still 401.
        assert refusal(url, origin=APP_ORIGIN)[0] == 401
        # A server-side client sends no Origin and is unaffected.
        assert relays(url, additional_headers=VICTIM_COOKIE)
    assert realtime_stats(fake_url)["opened"] == 2


def test_without_listed_origins_only_the_proxys_own_origin_passes(
    fake_url: str, proxy_url: str
) -> None:
    reset_realtime(fake_url)
    url = relay_url(proxy_url)
    for origin in (EVIL_ORIGIN, "null", "http://localhost:1", proxy_url + ".evil.example"):
        assert refusal(url, origin=origin)[0] == 403, origin
    assert realtime_stats(fake_url)["opened"] == 0
    assert relays(url, origin=proxy_url)  # a page served by the proxy's own origin
    assert relays(url)  # no Origin: a server-side client


def test_a_repeated_origin_never_reaches_fal(fake_url: str, proxy_url: str) -> None:
    # uvicorn's websockets protocol answers 400 itself; check_ws_origin refuses it too,
    # for servers that pass both values on.
    reset_realtime(fake_url)
    headers = [("origin", proxy_url), ("origin", EVIL_ORIGIN)]
    with pytest.raises(InvalidStatus) as info:
        connect(relay_url(proxy_url), additional_headers=headers).close()
    assert info.value.response.status_code in (400, 403)
    assert realtime_stats(fake_url)["opened"] == 0


def test_a_listed_wildcard_lets_any_page_in(fake_url: str) -> None:
    reset_realtime(fake_url)
    with serve(FalProxy(proxy_config(fake_url, cors_origins=("*",)))) as proxy:
        assert relays(relay_url(proxy), origin=EVIL_ORIGIN)
